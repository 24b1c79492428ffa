"""Passkeys on the admin's sign-in pages: the second step and "confirm it's you", driven by fido2's WebAuthn client
and a software authenticator; the same services as the API (one lockout, the same audit), and what is refused (a
replayed or forged answer, another person's passkey, a challenge of another session or of the API)."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from rest_framework import status
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from users.admin_auth.session import PENDING_KEY
from users.models import CustomUser, MfaChallenge, SecurityEvent, UserType, WebAuthnCredential
from users.tests.mfa_support import API, enrol_totp
from users.tests.principals import bearer_client
from users.tests.webauthn_support import Browser, passkey_registered

pytestmark = pytest.mark.django_db

ORIGIN = "http://localhost:3000"
LOGIN = "/admin/login/"
SECOND_STEP = "/admin/login/second-step/"
SECOND_STEP_OPTIONS = "/admin/login/second-step/passkey/"
REAUTH = "/admin/reauthenticate/"
REAUTH_OPTIONS = "/admin/reauthenticate/passkey/"
SCRIPT = "users/passkey.js"


@pytest.fixture(autouse=True)
def _relying_party(settings):
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = (ORIGIN,)


def _with_passkey(user: CustomUser) -> Browser:
    return passkey_registered(user, origin=ORIGIN)


def _password(client, user: CustomUser, next_url: str = "/admin/"):
    response = client.post(f"{LOGIN}?next={next_url}", {"username": user.username, "password": TEST_PASSWORD})
    assert (response.status_code, response["Location"]) == (302, SECOND_STEP), response.content
    return response


def _options(client, url: str = SECOND_STEP_OPTIONS) -> dict:
    response = client.post(url)
    assert response.status_code == status.HTTP_200_OK, response.content
    assert "no-store" in response["Cache-Control"]
    return response.json()


def _passkey_step(client, browser: Browser, *, tamper=None):
    """What passkey.js does: the options, the browser's answer in the hidden field, the form posted."""
    options = _options(client)
    if tamper:
        tamper(options)
    return client.post(SECOND_STEP, {"webauthn": json.dumps(browser.get(options))})


def _entered(client) -> bool:
    return client.get("/admin/").status_code == status.HTTP_200_OK


def _later(seconds: float):
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds))


@pytest.fixture
def other_hod(make_user):
    return make_user(user_type=UserType.HOD, username="hod2", email="hod2@school.test")


class TestSecondStep:
    def test_the_options_count_toward_the_sign_in_rate(self, client, hod, settings):
        rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login": "2/min"}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
        _with_passkey(hod)
        _password(client, hod)  # 1
        _options(client)  # 2

        response = client.post(SECOND_STEP_OPTIONS)

        assert response.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert response.json()["code"] == "throttled"
        assert int(response["Retry-After"]) > 0

    def test_the_page_offers_a_passkey_to_an_hod_who_has_one(self, client, hod):
        _with_passkey(hod)
        _password(client, hod)

        page = client.get(SECOND_STEP).content.decode()

        assert 'id="use-passkey"' in page
        assert f'<script src="/static/{SCRIPT}" defer></script>' in page
        assert 'name="webauthn"' in page
        assert 'name="recovery_code"' in page  # without JavaScript the recovery codes still work
        assert 'name="code"' not in page  # no authenticator app to ask a code of
        assert "<script>" not in page  # nothing inline: the page works under script-src 'self'

    def test_an_hod_with_only_an_app_gets_no_passkey_button(self, client, hod):
        enrol_totp(hod)
        _password(client, hod)

        page = client.get(SECOND_STEP).content.decode()

        assert 'id="use-passkey"' not in page
        assert SCRIPT not in page
        assert 'name="code"' in page

    def test_a_passkey_signs_in_where_the_hod_was_going_audited_like_the_api(self, client, hod):
        browser = _with_passkey(hod)
        _password(client, hod, next_url="/admin/users/customuser/")

        options = _options(client)
        response = client.post(SECOND_STEP, {"webauthn": json.dumps(browser.get(options))})

        assert [c["id"] for c in options["allowCredentials"]] == [WebAuthnCredential.objects.get().credential_id]
        assert options["userVerification"] == "required"
        assert (response.status_code, response["Location"]) == (302, "/admin/users/customuser/")
        assert _entered(client)
        assert PENDING_KEY not in client.session
        event = SecurityEvent.objects.get(type="login_succeeded")
        assert event.data == {"channel": "admin", "amr": ["pwd", "hwk", "mfa"], "method": "webauthn"}
        assert SecurityEvent.objects.get(type="mfa_used").data["method"] == "webauthn"
        assert MfaChallenge.objects.get(user=hod).used_at is not None
        assert WebAuthnCredential.objects.get().sign_count == 2  # registration, then this sign-in

    def test_an_hod_with_an_app_and_a_passkey_may_use_either(self, client, hod):
        enrolled = enrol_totp(hod)
        browser = _with_passkey(hod)
        _password(client, hod)

        page = client.get(SECOND_STEP).content.decode()
        response = _passkey_step(client, browser)

        assert 'id="use-passkey"' in page
        assert 'name="code"' in page
        assert response.status_code == status.HTTP_302_FOUND
        client.logout()
        _password(client, hod)
        assert client.post(SECOND_STEP, {"code": enrolled.code()}).status_code == status.HTTP_302_FOUND

    def test_a_replayed_answer_is_refused_and_counted(self, client, hod):
        browser = _with_passkey(hod)
        _password(client, hod)
        answer = json.dumps(browser.get(_options(client)))
        assert client.post(SECOND_STEP, {"webauthn": answer}).status_code == status.HTTP_302_FOUND
        client.logout()
        _password(client, hod)

        replayed = client.post(SECOND_STEP, {"webauthn": answer})

        assert replayed.status_code == status.HTTP_200_OK
        assert "wrong" in replayed.content.decode()
        assert not _entered(client)
        failed = SecurityEvent.objects.get(type="mfa_failed")
        assert failed.data == {"channel": "admin", "method": "webauthn"}
        assert _passkey_step(client, browser).status_code == status.HTTP_302_FOUND  # the step stays open

    def test_a_forged_signature_is_refused(self, client, hod):
        browser = _with_passkey(hod)
        _password(client, hod)
        answer = browser.get(_options(client))
        signature = bytearray(answer["response"]["signature"].encode())
        signature[10] = ord("A") if signature[10] != ord("A") else ord("B")
        answer["response"]["signature"] = signature.decode()

        response = client.post(SECOND_STEP, {"webauthn": json.dumps(answer)})

        assert response.status_code == status.HTTP_200_OK
        assert not _entered(client)
        assert SecurityEvent.objects.filter(type="mfa_failed").count() == 1

    def test_wrong_answers_count_toward_the_accounts_lockout(self, client, hod, settings):
        browser = _with_passkey(hod)
        _password(client, hod)
        answer = json.dumps(browser.get(_options(client)))
        client.post(SECOND_STEP, {"webauthn": answer})  # spends the challenge: from now on a replay
        client.logout()
        _password(client, hod)

        statuses = [
            client.post(SECOND_STEP, {"webauthn": answer}).status_code
            for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD + 1)
        ]
        api = APIClient().post(f"{API}/login/", {"username": hod.username, "password": TEST_PASSWORD}, format="json")

        assert statuses == [200] * settings.LOGIN_LOCKOUT_THRESHOLD + [429]
        assert api.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert SecurityEvent.objects.filter(type="mfa_failed").count() == settings.LOGIN_LOCKOUT_THRESHOLD
        locked = _passkey_step(client, browser)  # even the right passkey waits for the lock to end
        assert locked.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert int(locked["Retry-After"]) > 0

    def test_a_passkey_of_another_person_is_refused_and_counted(self, client, hod, other_hod):
        _with_passkey(hod)
        mallory = _with_passkey(other_hod)
        _password(client, hod)

        def any_passkey(options: dict) -> None:
            options["allowCredentials"] = []  # the authenticator offers the other HOD's own discoverable passkey

        response = _passkey_step(client, mallory, tamper=any_passkey)

        assert response.status_code == status.HTTP_200_OK
        assert not _entered(client)
        failed = SecurityEvent.objects.get(type="mfa_failed")
        assert (failed.user_id, failed.data["method"]) == (hod.pk, "webauthn")
        assert not SecurityEvent.objects.filter(type="login_succeeded").exists()

    def test_an_api_second_step_challenge_does_not_finish_an_admin_sign_in(self, client, hod):
        browser = _with_passkey(hod)
        api_token = (
            APIClient()
            .post(f"{API}/login/", {"username": hod.username, "password": TEST_PASSWORD}, format="json")
            .json()["mfa_token"]
        )
        api_options = (
            APIClient().post(f"{API}/login/mfa/webauthn/options/", {"mfa_token": api_token}, format="json").json()
        )
        _password(client, hod)

        response = client.post(SECOND_STEP, {"webauthn": json.dumps(browser.get(api_options))})

        assert response.status_code == status.HTTP_200_OK
        assert not _entered(client)

    @pytest.mark.parametrize("answer", ["not json", "[1, 2]", '"text"', "x" * 20_000])
    def test_a_malformed_answer_is_a_form_error_and_counts_nothing(self, client, hod, answer):
        _with_passkey(hod)
        _password(client, hod)

        response = client.post(SECOND_STEP, {"webauthn": answer})

        assert response.status_code == status.HTTP_200_OK
        assert not _entered(client)
        assert not SecurityEvent.objects.filter(type="mfa_failed").exists()

    def test_a_passkey_and_a_code_at_once_are_refused(self, client, hod):
        enrolled = enrol_totp(hod)
        browser = _with_passkey(hod)
        _password(client, hod)

        answer = json.dumps(browser.get(_options(client)))
        response = client.post(SECOND_STEP, {"webauthn": answer, "code": enrolled.code()})

        assert response.status_code == status.HTTP_200_OK
        assert "exactly one" in response.content.decode()
        assert not _entered(client)

    def test_the_options_need_a_pending_sign_in_a_post_and_a_passkey(self, client, hod, other_hod):
        enrol_totp(other_hod)
        nothing_pending = client.post(SECOND_STEP_OPTIONS)
        _password(client, other_hod)
        no_passkey = client.post(SECOND_STEP_OPTIONS)
        read = client.get(SECOND_STEP_OPTIONS)

        assert nothing_pending.status_code == status.HTTP_400_BAD_REQUEST
        assert nothing_pending.json()["code"] == "mfa_token_invalid"
        assert no_passkey.status_code == status.HTTP_409_CONFLICT
        assert no_passkey.json()["code"] == "webauthn_not_enrolled"
        assert read.status_code == status.HTTP_405_METHOD_NOT_ALLOWED

    def test_the_options_need_the_csrf_token(self, hod):
        _with_passkey(hod)
        client = Client(enforce_csrf_checks=True)
        page = client.get(LOGIN)
        token = page.cookies["csrftoken"].value
        client.post(
            f"{LOGIN}?next=/admin/",
            {"username": hod.username, "password": TEST_PASSWORD, "csrfmiddlewaretoken": token},
        )
        token = client.cookies["csrftoken"].value

        refused = client.post(SECOND_STEP_OPTIONS)
        accepted = client.post(SECOND_STEP_OPTIONS, HTTP_X_CSRFTOKEN=token)

        assert refused.status_code == status.HTTP_403_FORBIDDEN
        assert accepted.status_code == status.HTTP_200_OK, accepted.content

    def test_an_expired_sign_in_gives_no_options(self, client, hod, settings):
        _with_passkey(hod)
        _password(client, hod)

        with _later(settings.MFA_TOKEN_SECONDS + 1):
            response = client.post(SECOND_STEP_OPTIONS)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["code"] == "mfa_token_invalid"


@pytest.fixture
def passkey_admin(client, hod):
    """An HOD signed in to the admin with a passkey, and the browser holding it."""
    browser = _with_passkey(hod)
    _password(client, hod)
    assert _passkey_step(client, browser).status_code == status.HTTP_302_FOUND
    return client, browser


class TestConfirmItsYou:
    def test_the_page_offers_the_passkey(self, passkey_admin):
        client, _ = passkey_admin

        page = client.get(f"{REAUTH}?next=/admin/").content.decode()

        assert 'id="use-passkey"' in page
        assert f"/static/{SCRIPT}" in page
        assert 'name="password"' in page
        assert 'name="code"' not in page

    def test_a_passkey_confirms_and_returns_to_the_change(self, passkey_admin, student, settings):
        client, browser = passkey_admin
        url = f"/admin/users/customuser/{student.pk}/password/"
        new_password = "another-Long-passphrase-77"
        body = {"password1": new_password, "password2": new_password, "usable_password": "true"}
        with _later(settings.REAUTH_SECONDS + 1):
            asked = client.post(url, body)
            options = _options(client, REAUTH_OPTIONS)
            confirmed = client.post(REAUTH, {"webauthn": json.dumps(browser.get(options)), "next": url})
            done = client.post(url, body)

        assert asked["Location"].startswith(REAUTH)
        assert options["userVerification"] == "required"
        assert confirmed["Location"] == url
        assert done.status_code == status.HTTP_302_FOUND
        student.refresh_from_db()
        assert student.check_password(new_password)
        event = SecurityEvent.objects.get(type="reauthenticated")
        assert event.data == {"method": "webauthn", "channel": "admin"}

    def test_a_replayed_answer_is_refused_and_counted(self, passkey_admin, settings):
        client, browser = passkey_admin
        with _later(settings.REAUTH_SECONDS + 1):
            answer = json.dumps(browser.get(_options(client, REAUTH_OPTIONS)))
            first = client.post(REAUTH, {"webauthn": answer, "next": "/admin/"})
            again = client.post(REAUTH, {"webauthn": answer, "next": "/admin/"})

        assert first.status_code == status.HTTP_302_FOUND
        assert again.status_code == status.HTTP_200_OK
        failed = SecurityEvent.objects.get(type="mfa_failed")
        assert failed.data["method"] == "webauthn"

    def test_a_challenge_of_another_admin_session_is_refused(self, passkey_admin, hod, settings):
        client, browser = passkey_admin
        elsewhere = Client()
        _password(elsewhere, hod)
        assert _passkey_step(elsewhere, browser).status_code == status.HTTP_302_FOUND
        with _later(settings.REAUTH_SECONDS + 1):
            answer = json.dumps(browser.get(_options(elsewhere, REAUTH_OPTIONS)))
            here = client.post(REAUTH, {"webauthn": answer, "next": "/admin/"})
            there = elsewhere.post(REAUTH, {"webauthn": answer, "next": "/admin/"})

        assert here.status_code == status.HTTP_200_OK  # the challenge is the other session's: refused here
        assert SecurityEvent.objects.get(type="mfa_failed").data["method"] == "webauthn"
        assert there.status_code == status.HTTP_302_FOUND  # and still good where it was asked for
        assert SecurityEvent.objects.filter(type="reauthenticated").count() == 1

    def test_an_api_sessions_challenge_is_refused(self, passkey_admin, hod, settings):
        client, browser = passkey_admin
        api_options = bearer_client(hod).post(f"{API}/reauthenticate/webauthn/options/")
        assert api_options.status_code == status.HTTP_200_OK, api_options.content

        with _later(settings.REAUTH_SECONDS + 1):
            answer = json.dumps(browser.get(api_options.json()))
            response = client.post(REAUTH, {"webauthn": answer, "next": "/admin/"})

        assert response.status_code == status.HTTP_200_OK
        assert not SecurityEvent.objects.filter(type="reauthenticated").exists()

    def test_the_options_need_a_signed_in_hod_with_a_passkey(self, client, hod):
        enrol_totp(hod)
        anonymous = client.post(REAUTH_OPTIONS)
        client.force_login(hod)

        no_passkey = client.post(REAUTH_OPTIONS)

        assert anonymous.status_code == status.HTTP_302_FOUND
        assert anonymous["Location"].startswith(LOGIN)
        assert no_passkey.status_code == status.HTTP_409_CONFLICT
