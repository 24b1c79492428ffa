"""The admin's sign-in with a second factor in a real browser: Debian's headless Chromium driven by Playwright
against the live server, typing real TOTP codes computed by pyotp, or touching a passkey of Chromium's virtual
authenticator (DevTools' WebAuthn domain) through the page's own script (the browser is never downloaded)."""

import os
import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import TEST_PASSWORD
from users.models import SecurityEvent, TOTPDevice, WebAuthnCredential
from users.tests.mfa_support import code_at, enrol_totp
from users.tests.webauthn_support import REGISTER_PASSKEY, virtual_authenticator_add

CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium package")
    # Playwright's sync API keeps an event loop in this thread while the browser runs; the tests' own ORM calls
    # (fixtures, assertions, the database flush after each test) are still synchronous.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _type_password(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    page.fill("#id_username", username)
    page.fill("#id_password", TEST_PASSWORD)
    page.click("input[type=submit]")


def test_an_hod_types_the_code_from_their_app_and_lands_on_the_admin(page: Page, live_server, hod):
    enrolled = enrol_totp(hod)

    _type_password(page, live_server.url, hod.username)
    expect(page).to_have_url(f"{live_server.url}/admin/login/second-step/")
    page.fill("#id_code", enrolled.code())
    page.click("input[type=submit]")

    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.locator("#site-name")).to_contain_text("User Management Service")
    expect(page.locator("#user-tools")).to_contain_text(f"Welcome, {hod.first_name}")


def test_a_wrong_code_keeps_the_hod_on_the_second_page(page: Page, live_server, hod):
    enrolled = enrol_totp(hod)
    wrong = str((int(enrolled.code()) + 7) % 1_000_000).zfill(6)

    _type_password(page, live_server.url, hod.username)
    page.fill("#id_code", wrong)
    page.click("input[type=submit]")

    expect(page).to_have_url(f"{live_server.url}/admin/login/second-step/")
    expect(page.locator(".errornote")).to_contain_text("The code is wrong, expired or already used.")


def test_an_hod_without_a_factor_sets_up_an_app_then_enters(page: Page, live_server, hod, settings):
    settings.MFA_REQUIRED_ROLES = frozenset({"hod"})

    _type_password(page, live_server.url, hod.username)
    expect(page).to_have_url(f"{live_server.url}/admin/login/enrol/")
    expect(page.locator(".mfa-qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()  # what the app would read from the QR code
    page.fill("#id_code", code_at(secret, time.time()))
    page.click("input[type=submit]")

    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.click("#continue")
    expect(page).to_have_url(f"{live_server.url}/admin/")
    assert TOTPDevice.objects.get(user=hod).confirmed_at is not None


# The admin's pages as a strict Content-Security-Policy would serve them: scripts from the site only, none inline.
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"


@pytest.fixture
def passkey_page(browser: Browser, live_server, settings) -> Iterator[Page]:
    """A page whose browser has a platform authenticator (Chromium's virtual one: a passkey with user verification),
    at an origin the relying party accepts; the admin's pages come with a strict CSP."""
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = (live_server.url,)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Security Policy" in message.text else None)

    devtools = context.new_cdp_session(page)

    def strict(event: dict) -> None:  # every page the server answers gets the policy added to its headers
        headers = [h for h in event.get("responseHeaders", []) if h["name"].lower() != "content-security-policy"]
        answer = {"requestId": event["requestId"], "responseCode": event["responseStatusCode"]}
        if not 300 <= event["responseStatusCode"] < 400:
            answer["body"] = devtools.send("Fetch.getResponseBody", {"requestId": event["requestId"]})["body"]
        devtools.send(
            "Fetch.fulfillRequest",
            {**answer, "responseHeaders": [*headers, {"name": "Content-Security-Policy", "value": STRICT_CSP}]},
        )

    devtools.on("Fetch.requestPaused", strict)
    devtools.send("Fetch.enable", {"patterns": [{"resourceType": "Document", "requestStage": "Response"}]})
    virtual_authenticator_add(devtools)
    yield page
    context.close()
    assert violations == []  # the passkey script ran under the policy, nothing was blocked


def _register_passkey(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/")
    assert page.evaluate(REGISTER_PASSKEY, [username, TEST_PASSWORD]) == 201


# A browser older than WebAuthn's JSON helpers: the page's script converts base64url itself.
WITHOUT_JSON_HELPERS = """
delete PublicKeyCredential.parseRequestOptionsFromJSON;
delete PublicKeyCredential.prototype.toJSON;
"""


@pytest.mark.parametrize("json_helpers", [True, False], ids=["json-helpers", "fallback"])
def test_an_hod_signs_in_with_a_passkey_and_lands_on_the_admin(passkey_page: Page, live_server, hod, json_helpers):
    page = passkey_page
    _register_passkey(page, live_server.url, hod.username)
    if not json_helpers:
        page.add_init_script(WITHOUT_JSON_HELPERS)
        page.goto(f"{live_server.url}/admin/login/")
        assert page.evaluate("typeof PublicKeyCredential.parseRequestOptionsFromJSON") == "undefined"

    _type_password(page, live_server.url, hod.username)
    expect(page).to_have_url(f"{live_server.url}/admin/login/second-step/")
    page.click("#use-passkey")

    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.locator("#user-tools")).to_contain_text(f"Welcome, {hod.first_name}")
    event = SecurityEvent.objects.get(type="login_succeeded", data__channel="admin")
    assert event.data["method"] == "webauthn"
    assert WebAuthnCredential.objects.get(user=hod).last_used_at is not None


def test_an_hod_confirms_its_them_with_the_passkey(passkey_page: Page, live_server, hod):
    page = passkey_page
    _register_passkey(page, live_server.url, hod.username)
    _type_password(page, live_server.url, hod.username)
    page.click("#use-passkey")
    expect(page).to_have_url(f"{live_server.url}/admin/")

    page.goto(f"{live_server.url}/admin/reauthenticate/?next=/admin/users/customuser/")
    page.click("#use-passkey")

    expect(page).to_have_url(f"{live_server.url}/admin/users/customuser/")
    event = SecurityEvent.objects.get(type="reauthenticated")
    assert event.data == {"method": "webauthn", "channel": "admin"}
