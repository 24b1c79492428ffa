"""Passkeys on the single sign-on pages: the passwordless sign-in (its challenge bound to the browser that asked) and
the second step, driven by fido2's WebAuthn client and a software authenticator; the same owner as the API's
passkey sign-in (one lockout, one generic refusal, the same audit and throttle)."""

import json
import re
from html import unescape

import pytest
from django.conf import settings as django_settings
from django.test import Client, RequestFactory
from rest_framework import status
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from users.models import SecurityEvent, UserSession
from users.tests.mfa_support import API, enrol_totp
from users.tests.oidc_support import callback_params
from users.tests.webauthn_support import Browser, SoftAuthenticator, passkey_registered
from users.web.signin import signin_session_get

pytestmark = pytest.mark.django_db

ORIGIN = "http://localhost:3000"
SIGN_IN = "/account/sign-in/"
OPTIONS = "/account/sign-in/passkey/options/"
PASSKEY = "/account/sign-in/passkey/"
SECOND_FACTOR = "/account/sign-in/second-factor/"
SECOND_FACTOR_OPTIONS = "/account/sign-in/second-factor/passkey/options/"
REFUSED = "The passkey was not accepted."
HIDDEN_MFA_TOKEN = re.compile(r'name="mfa_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def _relying_party(settings):
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = (ORIGIN,)


def _options(client: Client) -> dict:
    response = client.post(OPTIONS)
    assert response.status_code == status.HTTP_200_OK, response.content
    assert "no-store" in response["Cache-Control"]
    return response.json()


def _answer(client: Client, answer: dict, next_url: str = "/account/"):
    return client.post(PASSKEY, {"webauthn": json.dumps(answer), "next": next_url})


def _sign_in(client: Client, browser: Browser, next_url: str = "/account/"):
    """What passkey.js does on the sign-in page: the options, the browser's answer in the hidden field, the post."""
    return _answer(client, browser.get(_options(client)), next_url)


def _session_of(client: Client) -> UserSession | None:
    """The live login session the browser's sign-in cookie names (read as the pages read it)."""
    request = RequestFactory().get("/")
    request.COOKIES = {name: morsel.value for name, morsel in client.cookies.items()}
    return signin_session_get(request)


def _refused(response) -> None:
    assert response.status_code == status.HTTP_401_UNAUTHORIZED
    assert REFUSED in response.content.decode()


class TestPasswordless:
    def test_the_sign_in_page_offers_a_passkey_under_a_policy_without_inline_script(self, client):
        page = client.get(f"{SIGN_IN}?next=/account/")

        text = page.content.decode()
        assert '<script src="/static/users/passkey.js" defer></script>' in text
        assert 'id="use-passkey"' in text
        assert f'data-options-url="{OPTIONS}"' in text
        assert f'action="{PASSKEY}"' in text
        policy = page["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "connect-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "<script>" not in text

    def test_a_passkey_signs_in_like_a_password_with_two_factors(self, client, student, django_assert_max_num_queries):
        browser = passkey_registered(student, origin=ORIGIN)
        answer = browser.get(_options(client))

        with django_assert_max_num_queries(18):
            response = _answer(client, answer)

        assert (response.status_code, response["Location"]) == (status.HTTP_302_FOUND, "/account/")
        session = _session_of(client)
        assert session is not None
        assert session.user_id == student.pk
        assert session.amr == ["hwk", "user", "mfa"]
        event = SecurityEvent.objects.get(type="login_succeeded", data__channel="sso")
        assert event.data["session_id"] == str(session.pk)
        assert response.cookies[f"{django_settings.SSO_COOKIE_NAME}_passkey"]["max-age"] == 0  # binding spent
        assert client.get("/account/").status_code == status.HTTP_200_OK

    def test_the_sign_in_continues_to_the_page_that_asked(self, client, student):
        browser = passkey_registered(student, origin=ORIGIN)

        response = _sign_in(client, browser, next_url="/oidc/authorize/?client_id=x")
        elsewhere = _sign_in(Client(), browser, next_url="https://evil.test/")

        assert response["Location"] == "/oidc/authorize/?client_id=x"
        assert elsewhere["Location"] == "/account/"

    def test_an_unknown_passkey_is_refused_with_the_generic_answer_and_counted(self, client, student):
        passkey_registered(student, origin=ORIGIN)
        stranger = Browser(SoftAuthenticator(), origin=ORIGIN)
        # a discoverable credential this service never registered (made for another account of the same site)
        stranger.create(_registration_options_elsewhere())

        response = _sign_in(client, stranger)

        _refused(response)
        assert _session_of(client) is None
        failed = SecurityEvent.objects.get(type="login_failed")
        assert failed.data == {"channel": "sso", "method": "webauthn", "known_account": False}

    def test_a_replayed_answer_is_refused(self, client, student):
        browser = passkey_registered(student, origin=ORIGIN)
        answer = browser.get(_options(client))
        assert _answer(client, answer).status_code == status.HTTP_302_FOUND

        replay = Client()
        replay.post(OPTIONS)
        _refused(_answer(replay, answer))
        assert _session_of(replay) is None
        assert SecurityEvent.objects.get(type="login_failed").user_id == student.pk

    def test_a_challenge_is_answered_only_from_the_browser_that_asked(self, client, student):
        browser = passkey_registered(student, origin=ORIGIN)
        answer = browser.get(_options(client))
        other = Client()
        other.post(OPTIONS)  # the other browser has a challenge of its own

        _refused(_answer(other, answer))
        _refused(_answer(Client(), answer))  # and one without any
        assert _answer(client, answer).status_code == status.HTTP_302_FOUND  # still live for the one that asked

    def test_challenges_of_the_api_and_of_the_pages_do_not_cross(self, client, student):
        browser = passkey_registered(student, origin=ORIGIN)
        api_options = APIClient().post(f"{API}/login/webauthn/options/").json()
        page_options = _options(client)

        _refused(_answer(client, browser.get(api_options)))
        api = APIClient().post(f"{API}/login/webauthn/", {"credential": browser.get(page_options)}, format="json")

        assert api.status_code == status.HTTP_401_UNAUTHORIZED
        assert not UserSession.objects.filter(user=student, amr__contains=["mfa"]).exists()

    @pytest.mark.parametrize("answer", ["not json", "[1, 2]", '"text"', "", "x" * 20_000])
    def test_a_malformed_answer_is_a_bad_request_and_counts_nothing(self, client, answer):
        client.post(OPTIONS)

        response = client.post(PASSKEY, {"webauthn": answer})

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "could not be read" in response.content.decode()
        assert not SecurityEvent.objects.filter(type="login_failed").exists()

    @pytest.mark.parametrize(
        "answer",
        [
            {},
            {"rawId": 1, "id": [], "response": "x"},
            {"rawId": "AAAA", "response": {"clientDataJSON": 5}},
            {"rawId": "AAAA", "response": {"clientDataJSON": "not base64url!"}},
            {"rawId": "A" * 5000, "type": "public-key", "response": {}},
        ],
    )
    def test_an_answer_that_is_no_assertion_is_refused_like_a_wrong_one(self, client, answer):
        client.post(OPTIONS)

        _refused(client.post(PASSKEY, {"webauthn": json.dumps(answer)}))
        assert SecurityEvent.objects.get(type="login_failed").data["known_account"] is False

    def test_failures_count_toward_the_accounts_lockout(self, client, student, settings):
        browser = passkey_registered(student, origin=ORIGIN)
        spent = browser.get(_options(client))
        assert _answer(client, spent).status_code == status.HTTP_302_FOUND

        attempts = Client()
        statuses = [_answer(attempts, spent).status_code for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD + 1)]
        locked = _sign_in(attempts, browser)  # even the right passkey waits for the lock to end
        api = APIClient().post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )

        assert statuses == [401] * settings.LOGIN_LOCKOUT_THRESHOLD + [429]
        assert locked.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert int(locked["Retry-After"]) > 0
        assert _session_of(attempts) is None
        assert api.status_code == status.HTTP_429_TOO_MANY_REQUESTS

    def test_the_options_and_the_answer_need_the_csrf_token(self, student):
        browser = passkey_registered(student, origin=ORIGIN)
        client = Client(enforce_csrf_checks=True)
        client.get(SIGN_IN)
        token = client.cookies["csrftoken"].value

        refused_options = client.post(OPTIONS)
        options = client.post(OPTIONS, HTTP_X_CSRFTOKEN=token)
        answer = json.dumps(browser.get(options.json()))
        refused_answer = client.post(PASSKEY, {"webauthn": answer})
        accepted = client.post(PASSKEY, {"webauthn": answer, "csrfmiddlewaretoken": token})

        assert refused_options.status_code == status.HTTP_403_FORBIDDEN
        assert options.status_code == status.HTTP_200_OK
        assert refused_answer.status_code == status.HTTP_403_FORBIDDEN
        assert accepted.status_code == status.HTTP_302_FOUND
        assert _session_of(client) is not None

    def test_options_and_answers_count_toward_the_login_rate(self, client, student, settings):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login": "2/min"},
        }
        browser = passkey_registered(student, origin=ORIGIN)
        answer = browser.get(_options(client))  # 1
        _refused(client.post(PASSKEY, {"webauthn": json.dumps({**answer, "rawId": "AAAA"})}))  # 2

        throttled_answer = _answer(client, answer)
        throttled_options = client.post(OPTIONS)

        assert throttled_answer.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert int(throttled_answer["Retry-After"]) > 0
        assert throttled_options.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert throttled_options.json()["code"] == "throttled"
        assert _session_of(client) is None

    def test_the_options_are_posted(self, client):
        assert client.get(OPTIONS).status_code == status.HTTP_405_METHOD_NOT_ALLOWED
        assert client.get(PASSKEY).status_code == status.HTTP_405_METHOD_NOT_ALLOWED


def _registration_options_elsewhere() -> dict:
    """Creation options as this relying party would send them, for an account it does not know."""
    return {
        "rp": {"id": "localhost", "name": "School"},
        "user": {"id": "c3RyYW5nZXI", "name": "stranger", "displayName": "Stranger"},
        "challenge": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
    }


class TestSecondStep:
    def _password(self, client: Client, user) -> str:
        page = client.post(SIGN_IN, {"username": user.username, "password": TEST_PASSWORD, "next": "/account/"})
        assert page.status_code == status.HTTP_200_OK, page.content
        match = HIDDEN_MFA_TOKEN.search(page.content.decode())
        assert match, page.content
        return match.group(1)

    def test_the_second_step_offers_the_passkey_of_a_person_who_has_one(self, client, hod, staff):
        passkey_registered(hod, origin=ORIGIN)
        enrol_totp(staff)

        with_passkey = client.post(SIGN_IN, {"username": hod.username, "password": TEST_PASSWORD})
        app_only = Client().post(SIGN_IN, {"username": staff.username, "password": TEST_PASSWORD})

        assert 'id="use-passkey"' in with_passkey.content.decode()
        assert "/static/users/passkey.js" in with_passkey.content.decode()
        assert 'id="use-passkey"' not in app_only.content.decode()
        assert "passkey.js" not in app_only.content.decode()

    def test_a_passkey_completes_the_second_step(self, client, hod):
        browser = passkey_registered(hod, origin=ORIGIN)
        mfa_token = self._password(client, hod)

        options = client.post(SECOND_FACTOR_OPTIONS, {"mfa_token": mfa_token})
        assert options.status_code == status.HTTP_200_OK, options.content
        answer = json.dumps(browser.get(options.json()))
        response = client.post(SECOND_FACTOR, {"mfa_token": mfa_token, "webauthn": answer, "next": "/account/"})

        assert (response.status_code, response["Location"]) == (status.HTTP_302_FOUND, "/account/")
        session = _session_of(client)
        assert session is not None
        assert session.user_id == hod.pk
        assert "hwk" in session.amr
        assert "pwd" in session.amr
        event = SecurityEvent.objects.get(type="login_succeeded", data__channel="sso")
        assert event.data["method"] == "webauthn"

    def test_a_wrong_passkey_answer_keeps_the_second_step_and_counts(self, client, hod):
        browser = passkey_registered(hod, origin=ORIGIN)
        mfa_token = self._password(client, hod)
        answer = browser.get(client.post(SECOND_FACTOR_OPTIONS, {"mfa_token": mfa_token}).json())
        answer["response"]["signature"] = answer["response"]["signature"][:-4] + "AAAA"

        response = client.post(SECOND_FACTOR, {"mfa_token": mfa_token, "webauthn": json.dumps(answer)})

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert 'id="use-passkey"' in response.content.decode()
        assert _session_of(client) is None
        assert SecurityEvent.objects.filter(type="mfa_failed", user=hod).count() == 1

    def test_the_options_need_a_live_mfa_token_and_a_passkey(self, client, hod, staff):
        enrol_totp(staff)
        staff_token = self._password(Client(), staff)

        expired = client.post(SECOND_FACTOR_OPTIONS, {"mfa_token": "nope"})
        no_passkey = client.post(SECOND_FACTOR_OPTIONS, {"mfa_token": staff_token})

        assert expired.status_code == status.HTTP_401_UNAUTHORIZED  # as the API's login/mfa/webauthn/options/
        assert expired.json()["code"] == "mfa_token_invalid"
        assert no_passkey.status_code == status.HTTP_409_CONFLICT
        assert no_passkey.json()["code"] == "webauthn_not_enrolled"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_app_to_sign_in_page_to_passkey_and_back_with_a_code(browser, rp, student, settings, issuer):
    """The flow over HTTP against the live server: the app's authorization request, the sign-in page, the passkey,
    and the redirect to the app with a code whose tokens say two factors."""
    settings.WEBAUTHN_ORIGINS = (issuer,)
    authenticator = passkey_registered(student, origin=issuer)
    page = browser.get(rp.authorization_url())
    csrf = browser.http.cookies["csrftoken"]

    options = browser.http.post(f"{issuer}{OPTIONS}", headers={"X-CSRFToken": csrf}, timeout=10)
    assert options.status_code == status.HTTP_200_OK, options.text
    callback = browser.post_to(
        page,
        PASSKEY,
        {"webauthn": json.dumps(authenticator.get(options.json())), "next": _next_of(page.text)},
    )

    claims = rp.id_token_claims(rp.exchange(callback))
    assert claims["sub"] == str(student.pk)
    assert "mfa" in claims["amr"]
    assert callback_params(callback)["state"] == rp.state


def _next_of(html: str) -> str:
    match = re.search(r'name="next" value="([^"]*)"', html)
    assert match, html
    return unescape(match.group(1))
