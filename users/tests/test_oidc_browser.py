"""The single sign-on in a real browser: headless Debian chromium driven by Playwright, against a live server."""

import os
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.db import connections
from playwright.sync_api import Page, Route, expect, sync_playwright

from conftest import TEST_PASSWORD
from users.models import SecurityEvent, UserSession
from users.tests.mfa_support import enrol_totp
from users.tests.oidc_support import REDIRECT_URI, RelyingParty, bearer
from users.tests.webauthn_support import REGISTER_PASSKEY, virtual_authenticator_add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
API = "/api/v1/users"
POST_LOGOUT_URI = "http://rp.test/signed-out"


@pytest.fixture
def page(issuer, monkeypatch) -> Iterator[Page]:
    """A fresh headless chromium page; requests to the app (rp.test) are answered by a stub and recorded."""
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run make system-deps")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context()
        page = context.new_page()
        page.app_visits = []  # type: ignore[attr-defined]

        def app(route: Route) -> None:
            page.app_visits.append(route.request.url)  # type: ignore[attr-defined]
            route.fulfill(status=200, content_type="text/html", body="<h1>The app</h1>")

        page.route("http://rp.test/**", app)
        yield page
        context.close()
        browser.close()
        connections.close_all()  # the ORM's connections of this (event loop) context, not the test's own


def _code_url(page: Page) -> str:
    [visit] = [url for url in page.app_visits if url.startswith(REDIRECT_URI)]  # type: ignore[attr-defined]
    return visit


def test_app_sign_in_second_factor_consent_and_back_with_a_code(page, make_rp, hod, settings, issuer):
    settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
    enrolled = enrol_totp(hod)
    rp: RelyingParty = make_rp(scope="openid profile email")

    page.goto(rp.authorization_url())
    page.get_by_label("Username or e-mail").fill(hod.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_label("Code from your authenticator app").fill(enrolled.code())
    page.get_by_role("button", name="Continue").click()
    assert page.get_by_role("heading", name="Allow Library to use your account?").is_visible()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{REDIRECT_URI}**")

    code_url = _code_url(page)
    params = {k: v[0] for k, v in parse_qs(urlparse(code_url).query).items()}
    assert params["state"] == rp.state
    assert params["iss"] == issuer
    token = rp.exchange(code_url)
    claims = rp.id_token_claims(token)
    assert claims["sub"] == str(hod.pk)
    assert "otp" in claims["amr"]
    assert requests.get(rp.discovery["userinfo_endpoint"], headers=bearer(token["access_token"]), timeout=10).ok


def test_app_sign_in_with_a_passkey_consent_and_back_with_a_code(page, make_rp, student, settings, issuer):
    """The passkey button of the sign-in page, in chromium with a virtual authenticator (DevTools' WebAuthn domain),
    under the pages' own Content-Security-Policy (script from the site only)."""
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = (issuer,)
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Security Policy" in message.text else None)
    devtools = page.context.new_cdp_session(page)
    virtual_authenticator_add(devtools)
    page.goto(f"{issuer}/account/sign-in/")
    assert page.evaluate(REGISTER_PASSKEY, [student.username, TEST_PASSWORD]) == 201
    rp: RelyingParty = make_rp(scope="openid profile email")

    page.goto(rp.authorization_url())
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("heading", name="Allow Library to use your account?")).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{REDIRECT_URI}**")

    code_url = _code_url(page)
    assert {k: v[0] for k, v in parse_qs(urlparse(code_url).query).items()}["state"] == rp.state
    claims = rp.id_token_claims(rp.exchange(code_url))
    assert claims["sub"] == str(student.pk)
    assert "mfa" in claims["amr"]
    assert SecurityEvent.objects.filter(type="login_succeeded", data__channel="sso", user=student).count() == 1
    assert violations == []


def test_the_keyboard_reaches_every_field_with_a_visible_focus(page, rp):
    page.goto(rp.authorization_url())

    page.keyboard.press("Tab")  # the skip link comes first
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.id")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")

    assert focused == "id_username"
    assert outline != "none"


def test_the_account_page_signs_out_another_session(page, rp, student, login, issuer):
    api = login(student)
    page.goto(rp.authorization_url())
    page.get_by_label("Username or e-mail").fill(student.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{REDIRECT_URI}**")

    page.goto(f"{issuer}/account/")
    other = UserSession.objects.get(pk=_sid_of(api["access_token"]))
    page.locator("li", has_text=str(other.ip or "")).filter(has_not_text="this browser").get_by_role(
        "button", name="Sign out"
    ).click()

    assert page.get_by_text("That session was signed out.").is_visible()
    assert UserSession.objects.get(pk=other.pk).ended_at is not None
    assert (
        requests.get(f"{issuer}{API}/validate-token/", headers=bearer(api["access_token"]), timeout=10).status_code
        == 401
    )


def test_rp_initiated_logout_returns_to_the_app(page, make_rp, student, issuer):
    rp = make_rp("--first-party", "--post-logout-redirect-uri", POST_LOGOUT_URI)
    page.goto(rp.authorization_url())
    page.get_by_label("Username or e-mail").fill(student.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{REDIRECT_URI}**")
    sid = rp.id_token_claims(rp.exchange(_code_url(page)))["sid"]

    page.goto(f"{issuer}/oidc/logout/?client_id={rp.client_id}&post_logout_redirect_uri={POST_LOGOUT_URI}&state=bye")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{POST_LOGOUT_URI}**")

    assert page.url == f"{POST_LOGOUT_URI}?state=bye"
    assert UserSession.objects.get(pk=sid).ended_at is not None
    page.goto(rp.authorization_url())
    assert page.get_by_label("Password").is_visible()


def _sid_of(access_token: str) -> str:
    import jwt

    return jwt.decode(access_token, options={"verify_signature": False})["sid"]
