"""The account page of the single sign-on: profile, sessions, factors, password, apps, through a real browser flow."""

import re
import time

import pytest
import requests

from conftest import TEST_PASSWORD
from users.models import OidcConsent, SessionEndReason, UserSession
from users.tests.mfa_support import code_at, enrol_totp
from users.tests.oidc_support import Browser, bearer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
API = "/api/v1/users"
NEW_PASSWORD = "An0ther-Passw0rd!"


@pytest.fixture
def signed_in(browser, rp, student):
    """The student signed in to ``rp`` through the browser; the app's tokens."""
    return rp.exchange(browser.authorize(rp, student.username))


def test_the_account_page_needs_a_sign_in(browser):
    page = browser.get("/account/")

    assert 'name="password"' in page.text
    assert page.url.endswith("/account/sign-in/?next=/account/")


def test_the_account_page_shows_profile_sessions_factors_and_apps(browser, rp, student, signed_in, login):
    login(student)

    page = browser.get("/account/")

    assert page.status_code == 200
    assert student.email in page.text
    assert "(this browser)" in page.text
    assert "Apps: Library" in page.text
    assert page.text.count("Sign out<span") == 2
    assert "Authenticator app: not set up" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"


def test_signing_out_another_session_ends_its_tokens(browser, rp, student, signed_in, login, issuer):
    api = login(student)
    other = UserSession.objects.exclude(pk=rp.id_token_claims(signed_in)["sid"]).get(user=student)

    page = browser.get("/account/")
    done = browser.post_to(page, f"/account/sessions/{other.pk}/end/", {})

    assert done.status_code == 200
    assert "That session was signed out." in done.text
    validated = requests.get(f"{issuer}{API}/validate-token/", headers=bearer(api["access_token"]), timeout=10)
    assert validated.status_code == 401
    assert requests.get(f"{issuer}{API}/validate-token/", headers=bearer(signed_in["access_token"]), timeout=10).ok


def test_signing_out_this_session_clears_the_sign_in(browser, rp, student, signed_in):
    sid = rp.id_token_claims(signed_in)["sid"]

    page = browser.get("/account/")
    done = browser.post_to(page, f"/account/sessions/{sid}/end/", {})

    assert 'name="password"' in done.text
    assert UserSession.objects.get(pk=sid).end_reason == SessionEndReason.REVOKED
    assert 'name="password"' in browser.get(rp.authorization_url()).text


def test_account_forms_need_their_csrf_token(browser, rp, student, signed_in):
    sid = rp.id_token_claims(signed_in)["sid"]

    page = browser.get("/account/")
    refused = browser.post_to(page, f"/account/sessions/{sid}/end/", {}, csrf=False)

    assert refused.status_code == 403
    assert UserSession.objects.get(pk=sid).ended_at is None


def test_removing_an_apps_access_asks_for_consent_again(browser, make_rp, student, issuer):
    rp = make_rp(scope="openid email")
    consent = browser.authorize(rp, student.username)
    token = rp.exchange(browser.post_form(consent, {"allow": "1"}))
    app_id = OidcConsent.objects.get(user=student).application_id

    page = browser.get("/account/")
    assert "Library (email, openid)" in page.text
    done = browser.post_to(page, f"/account/apps/{app_id}/revoke/", {})

    assert "The app&#x27;s access was withdrawn." in done.text
    assert not OidcConsent.objects.filter(user=student).exists()
    refreshed = requests.post(
        rp.discovery["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(rp.client_id, rp.client_secret or ""),
        timeout=10,
    )
    assert refreshed.status_code == 400
    assert "Allow Library" in browser.get(rp.authorization_url()).text


class TestPasswordChange:
    def _change(self, browser: Browser, old: str, new: str = NEW_PASSWORD, confirm: str | None = None):
        page = browser.get("/account/")
        data = {"old_password": old, "new_password": new, "confirm_password": confirm or new}
        return browser.post_to(page, "/account/password/", data)

    def test_changing_the_password_signs_out_the_other_sessions(self, browser, rp, student, signed_in, login, issuer):
        api = login(student)

        done = self._change(browser, TEST_PASSWORD)

        assert done.status_code == 200
        assert "Your password was changed" in done.text
        assert (
            requests.get(f"{issuer}{API}/validate-token/", headers=bearer(api["access_token"]), timeout=10).status_code
            == 401
        )
        assert requests.get(f"{issuer}{API}/validate-token/", headers=bearer(signed_in["access_token"]), timeout=10).ok
        relogin = requests.post(
            f"{issuer}{API}/login/", json={"username": student.username, "password": NEW_PASSWORD}, timeout=10
        )
        assert relogin.status_code == 200

    def test_a_wrong_current_password_is_refused(self, browser, rp, student, signed_in):
        refused = self._change(browser, "not-my-password")

        assert refused.status_code == 400
        assert "Current password is incorrect." in refused.text

    def test_an_old_sign_in_must_sign_in_again(self, browser, rp, student, signed_in, settings):
        settings.REAUTH_SECONDS = -1

        refused = self._change(browser, TEST_PASSWORD)

        assert refused.status_code == 403
        assert "Sign in again" in refused.text


def test_sessions_lists_the_apps_a_session_came_through(browser, rp, student, signed_in, issuer):
    sessions = requests.get(f"{issuer}{API}/sessions/", headers=bearer(signed_in["access_token"]), timeout=10).json()

    [session] = sessions
    assert session["is_current"] is True
    assert session["apps"] == [{"client_id": rp.client_id, "name": "Library"}]


class TestFactors:
    def test_setting_up_an_authenticator_app_from_the_account_page(self, browser, rp, student, signed_in):
        page = browser.get("/account/")
        assert "Authenticator app: not set up" in page.text
        setup = browser.post_to(page, "/account/factors/totp/", {})
        secret = re.search(r"Key: <code>([A-Z2-7]+)</code>", setup.text).group(1)

        wrong = browser.post_to(setup, "/account/factors/totp/confirm/", {"code": "000000"})
        assert wrong.status_code == 400
        secret = re.search(r"Key: <code>([A-Z2-7]+)</code>", wrong.text).group(1)
        done = browser.post_to(wrong, "/account/factors/totp/confirm/", {"code": code_at(secret, time.time())})

        assert "Your authenticator app is set up" in done.text
        assert done.text.count("<li><code>") == 10
        assert "Authenticator app: set up" in browser.get("/account/").text

    def test_new_recovery_codes_and_removal_need_a_recent_sign_in(self, browser, rp, student, signed_in, settings):
        enrol_totp(student)
        page = browser.get("/account/")

        fresh = browser.post_to(page, "/account/factors/recovery-codes/", {})
        assert "New recovery codes" in fresh.text
        settings.REAUTH_SECONDS = -1
        refused = browser.post_to(browser.get("/account/"), "/account/factors/totp/remove/", {})
        assert refused.status_code == 403
        assert "Sign in again" in refused.text
        settings.REAUTH_SECONDS = 300
        removed = browser.post_to(browser.get("/account/"), "/account/factors/totp/remove/", {})
        assert "The authenticator app was removed." in removed.text
        assert "Authenticator app: not set up" in removed.text
