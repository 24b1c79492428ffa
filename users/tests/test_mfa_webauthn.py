"""Passkeys, driven end to end by fido2's WebAuthn client and a software authenticator: registration, the second step
of a login, the passwordless sign-in, reauthentication and removal; and what is refused (another origin, a replayed
or cloned answer, another person's passkey, no user verification, malformed input), with the lockout counting it."""

from datetime import timedelta

import jwt
import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from rest_framework import status
from rest_framework.test import APIClient

from user_service.settings import _default_webauthn_origins, _webauthn_settings_check
from users.models import (
    CustomUser,
    EventType,
    OutboxMessage,
    RecoveryCode,
    SecurityEvent,
    WebAuthnChallenge,
    WebAuthnCredential,
)
from users.services import mfa
from users.tests.mfa_support import API, bearer, enrol_totp, password_step
from users.tests.principals import bearer_client
from users.tests.webauthn_support import Browser, SoftAuthenticator

pytestmark = pytest.mark.django_db
ORIGIN = "http://localhost:3000"


@pytest.fixture(autouse=True)
def _relying_party(settings):
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = (ORIGIN,)
    settings.REAUTH_SECONDS = 60


def _register(client: APIClient, browser: Browser, name: str = "Laptop"):
    options = client.post(f"{API}/mfa/webauthn/register/options/")
    assert options.status_code == status.HTTP_200_OK, options.content
    credential = browser.create(options.json())
    return client.post(f"{API}/mfa/webauthn/register/", {"name": name, "credential": credential}, format="json")


def _with_passkey(user: CustomUser) -> Browser:
    browser = Browser(SoftAuthenticator())
    response = _register(bearer_client(user), browser)
    assert response.status_code == status.HTTP_201_CREATED, response.content
    return browser


def _passwordless(browser: Browser, client: APIClient | None = None):
    client = client or APIClient()
    options = client.post(f"{API}/login/webauthn/options/").json()
    return client.post(f"{API}/login/webauthn/", {"credential": browser.get(options)}, format="json")


def _second_step(user: CustomUser, browser: Browser, *, tamper=None):
    token = password_step(user)["mfa_token"]
    options = APIClient().post(f"{API}/login/mfa/webauthn/options/", {"mfa_token": token}, format="json")
    assert options.status_code == status.HTTP_200_OK, options.content
    body = options.json()
    if tamper:
        tamper(body)
    assertion = browser.get(body)
    return APIClient().post(f"{API}/login/mfa/", {"mfa_token": token, "webauthn": assertion}, format="json")


def _amr(body: dict) -> list[str]:
    return jwt.decode(body["access_token"], options={"verify_signature": False})["amr"]


class TestRegistration:
    def test_registers_a_passkey_listed_with_the_factors(self, staff):
        client = bearer_client(staff)
        browser = Browser(SoftAuthenticator())

        response = _register(client, browser, name="Work laptop")

        assert response.status_code == status.HTTP_201_CREATED, response.content
        body = response.json()
        assert body["name"] == "Work laptop"
        assert len(body["recovery_codes"]) == 10  # the first factor comes with recovery codes
        overview = client.get(f"{API}/mfa/").json()
        assert overview["methods"] == ["webauthn", "recovery_code"]
        assert [(p["id"], p["name"], p["last_used_at"]) for p in overview["webauthn"]] == [
            (body["id"], "Work laptop", None)
        ]
        saved = WebAuthnCredential.objects.get(user=staff)
        assert saved.sign_count == 1
        assert saved.discoverable
        record = SecurityEvent.objects.get(user=staff, type=SecurityEvent.Type.MFA_ENROLLED)
        assert record.data["method"] == "webauthn"
        event = OutboxMessage.objects.get(topic=EventType.USER_MFA_CHANGED, payload__data__change="enrolled")
        assert event.payload["data"]["method"] == "webauthn"

    def test_several_per_person_and_the_same_key_refused_twice(self, staff):
        client = bearer_client(staff)
        first, second = SoftAuthenticator(), SoftAuthenticator()
        assert _register(client, Browser(first)).status_code == status.HTTP_201_CREATED

        again = _register(client, Browser(second), name="Phone")
        options = client.post(f"{API}/mfa/webauthn/register/options/").json()

        assert again.status_code == status.HTTP_201_CREATED
        assert again.json()["recovery_codes"] == []  # the person keeps the codes they have
        assert len(options["excludeCredentials"]) == 2  # a browser will not register the same key again
        assert WebAuthnCredential.objects.filter(user=staff).count() == 2

    def test_a_page_on_another_origin_is_refused(self, staff):
        phishing = Browser(SoftAuthenticator(), origin="https://school-login.example", check_rp_id=False)

        response = _register(bearer_client(staff), phishing)

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["code"] == "webauthn_invalid"
        assert "origin" in response.json()["detail"]
        assert not WebAuthnCredential.objects.exists()

    def test_an_authenticator_that_did_not_verify_the_user_is_refused(self, staff):
        response = _register(bearer_client(staff), Browser(SoftAuthenticator(verify_user=False)))

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "verif" in response.json()["detail"].lower()

    def test_the_challenge_is_single_use_and_belongs_to_its_person(self, staff, student):
        client = bearer_client(staff)
        options = client.post(f"{API}/mfa/webauthn/register/options/").json()
        credential = Browser(SoftAuthenticator()).create(options)

        by_another = bearer_client(student).post(
            f"{API}/mfa/webauthn/register/", {"credential": credential}, format="json"
        )
        first = client.post(f"{API}/mfa/webauthn/register/", {"credential": credential}, format="json")
        replayed = client.post(f"{API}/mfa/webauthn/register/", {"credential": credential}, format="json")

        assert by_another.status_code == status.HTTP_400_BAD_REQUEST
        assert first.status_code == status.HTTP_201_CREATED
        assert replayed.status_code == status.HTTP_400_BAD_REQUEST
        assert replayed.json()["code"] == "webauthn_challenge_invalid"

    def test_an_expired_challenge_is_refused(self, staff):
        client = bearer_client(staff)
        options = client.post(f"{API}/mfa/webauthn/register/options/").json()
        credential = Browser(SoftAuthenticator()).create(options)

        with time_machine.travel(timezone.now() + timedelta(seconds=181)):
            response = client.post(f"{API}/mfa/webauthn/register/", {"credential": credential}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST


class TestSecondFactor:
    def test_a_password_then_a_passkey(self, staff):
        browser = _with_passkey(staff)

        first = password_step(staff)
        response = _second_step(staff, browser)

        assert first["code"] == "mfa_required"
        assert "webauthn" in first["methods"]
        assert response.status_code == status.HTTP_200_OK, response.content
        assert _amr(response.json()) == ["pwd", "hwk", "mfa"]
        saved = WebAuthnCredential.objects.get(user=staff)
        assert saved.sign_count == 2
        assert saved.last_used_at is not None
        used = SecurityEvent.objects.get(user=staff, type=SecurityEvent.Type.MFA_USED)
        assert (used.data["method"], used.data["purpose"]) == ("webauthn", "login")

    def test_the_options_list_only_the_persons_passkeys(self, staff):
        browser = _with_passkey(staff)
        token = password_step(staff)["mfa_token"]

        options = APIClient().post(f"{API}/login/mfa/webauthn/options/", {"mfa_token": token}, format="json").json()

        stored = WebAuthnCredential.objects.get(user=staff).credential_id
        assert [c["id"] for c in options["allowCredentials"]] == [stored]
        assert options["userVerification"] == "required"
        assert browser.authenticator.credentials  # it holds that key

    def test_a_passkey_of_another_person_is_refused_and_counted(self, staff, student):
        _with_passkey(staff)
        mallory = _with_passkey(student)

        def any_passkey(options: dict) -> None:
            options["allowCredentials"] = []  # the authenticator offers the student's own discoverable passkey

        response = _second_step(staff, mallory, tamper=any_passkey)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["code"] == "invalid_code"
        failed = SecurityEvent.objects.get(user=staff, type=SecurityEvent.Type.MFA_FAILED)
        assert failed.data["method"] == "webauthn"

    def test_a_page_on_another_origin_is_refused(self, staff):
        browser = _with_passkey(staff)
        phishing = Browser(browser.authenticator, origin="https://school-login.example", check_rp_id=False)

        assert _second_step(staff, phishing).status_code == status.HTTP_401_UNAUTHORIZED

    def test_no_user_verification_is_refused(self, staff):
        browser = _with_passkey(staff)
        browser.authenticator.verify_user = False

        assert _second_step(staff, browser).status_code == status.HTTP_401_UNAUTHORIZED

    def test_the_options_need_a_live_mfa_token_and_a_passkey(self, staff, student):
        enrol_totp(student)
        token = password_step(student)["mfa_token"]

        made_up = APIClient().post(f"{API}/login/mfa/webauthn/options/", {"mfa_token": "mfa_x"}, format="json")
        no_passkey = APIClient().post(f"{API}/login/mfa/webauthn/options/", {"mfa_token": token}, format="json")

        assert made_up.status_code == status.HTTP_401_UNAUTHORIZED
        assert no_passkey.status_code == status.HTTP_409_CONFLICT
        assert no_passkey.json()["code"] == "webauthn_not_enrolled"

    def test_an_hod_enrols_a_passkey_with_the_enrolment_token_and_completes_the_login(self, settings, hod):
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
        first = password_step(hod)
        assert first["code"] == "mfa_enrolment_required"
        assert "webauthn" in first["methods"]
        browser = Browser(SoftAuthenticator())

        registered = _register(bearer(first["mfa_token"]), browser)
        options = APIClient().post(
            f"{API}/login/mfa/webauthn/options/", {"mfa_token": first["mfa_token"]}, format="json"
        )
        body = {"mfa_token": first["mfa_token"], "webauthn": browser.get(options.json())}
        done = APIClient().post(f"{API}/login/mfa/", body, format="json")

        assert registered.status_code == status.HTTP_201_CREATED, registered.content
        assert len(registered.json()["recovery_codes"]) == 10
        assert done.status_code == status.HTTP_200_OK, done.content
        assert "hwk" in _amr(done.json())


class TestPasswordless:
    def test_a_discoverable_passkey_signs_in_alone_and_counts_as_two_factors(self, staff):
        browser = _with_passkey(staff)

        response = _passwordless(browser)

        assert response.status_code == status.HTTP_200_OK, response.content
        body = response.json()
        assert body["user"]["id"] == staff.pk
        assert _amr(body) == ["hwk", "user", "mfa"]
        login = SecurityEvent.objects.filter(user=staff, type=SecurityEvent.Type.LOGIN_SUCCEEDED).last()
        assert login is not None
        assert login.data["amr"] == ["hwk", "user", "mfa"]

    def test_the_sign_in_asks_the_database_a_bounded_number_of_times(self, staff, django_assert_max_num_queries):
        # The credential with its person and profile (read once), the lockout (3), the challenge spent by one
        # UPDATE, the counter, then one transaction: session, refresh record, last_login, two audit records, event.
        browser = _with_passkey(staff)
        options = APIClient().post(f"{API}/login/webauthn/options/").json()
        assertion = browser.get(options)

        with django_assert_max_num_queries(14):
            response = APIClient().post(f"{API}/login/webauthn/", {"credential": assertion}, format="json")

        assert response.status_code == status.HTTP_200_OK, response.content
        assert response.json()["user"]["id"] == staff.pk

    def test_an_hod_whose_role_needs_mfa_is_in_at_once(self, settings, hod):
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
        browser = _with_passkey(hod)

        assert _passwordless(browser).status_code == status.HTTP_200_OK

    def test_a_replayed_answer_is_refused(self, staff):
        browser = _with_passkey(staff)
        options = APIClient().post(f"{API}/login/webauthn/options/").json()
        assertion = browser.get(options)

        first = APIClient().post(f"{API}/login/webauthn/", {"credential": assertion}, format="json")
        replayed = APIClient().post(f"{API}/login/webauthn/", {"credential": assertion}, format="json")

        assert first.status_code == status.HTTP_200_OK
        assert replayed.status_code == status.HTTP_401_UNAUTHORIZED
        assert replayed.json()["code"] == "invalid_credentials"

    def test_a_cloned_key_is_refused_by_the_signature_counter(self, staff):
        browser = _with_passkey(staff)
        clone = Browser(browser.authenticator.clone())
        assert _passwordless(browser).status_code == status.HTTP_200_OK  # the genuine key moves the counter on

        response = _passwordless(clone)  # a fresh challenge, a valid signature, a counter that did not move

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert WebAuthnCredential.objects.get(user=staff).sign_count == 2

    def test_an_authenticator_without_a_counter_still_works(self, staff):
        browser = Browser(SoftAuthenticator(count=False))
        assert _register(bearer_client(staff), browser).status_code == status.HTTP_201_CREATED

        assert [_passwordless(browser).status_code for _ in range(2)] == [status.HTTP_200_OK] * 2

    def test_another_origin_and_no_user_verification_are_refused(self, staff):
        browser = _with_passkey(staff)
        phishing = Browser(browser.authenticator, origin="https://school-login.example", check_rp_id=False)

        wrong_origin = _passwordless(phishing)
        browser.authenticator.verify_user = False
        unverified = _passwordless(browser)

        assert wrong_origin.status_code == unverified.status_code == status.HTTP_401_UNAUTHORIZED

    def test_an_inactive_person_is_refused(self, staff):
        browser = _with_passkey(staff)
        CustomUser.objects.filter(pk=staff.pk).update(is_active=False)

        assert _passwordless(browser).status_code == status.HTTP_401_UNAUTHORIZED

    def test_failed_answers_lock_the_account_like_wrong_passwords(self, staff, settings):
        browser = _with_passkey(staff)
        browser.authenticator.verify_user = False

        statuses = [_passwordless(browser).status_code for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD)]
        browser.authenticator.verify_user = True
        locked = _passwordless(browser)

        assert statuses == [status.HTTP_401_UNAUTHORIZED] * settings.LOGIN_LOCKOUT_THRESHOLD
        assert locked.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert password_step(staff)["code"] == "locked_out"  # one lock for the account, whatever was guessed
        failed = SecurityEvent.objects.filter(user=staff, type=SecurityEvent.Type.LOGIN_FAILED)
        assert failed.count() == settings.LOGIN_LOCKOUT_THRESHOLD
        assert failed.first().data["method"] == "webauthn"

    def test_failed_second_steps_count_toward_the_same_lockout(self, staff, settings):
        browser = _with_passkey(staff)
        browser.authenticator.verify_user = False

        statuses = [_second_step(staff, browser).status_code for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD)]

        assert statuses == [status.HTTP_401_UNAUTHORIZED] * settings.LOGIN_LOCKOUT_THRESHOLD
        assert password_step(staff)["code"] == "locked_out"

    def test_the_options_name_no_account(self):
        options = APIClient().post(f"{API}/login/webauthn/options/").json()

        assert options["allowCredentials"] == []
        assert options["rpId"] == "localhost"
        assert options["userVerification"] == "required"
        assert WebAuthnChallenge.objects.filter(purpose="passwordless", user=None).count() == 1


class TestReauthenticationAndRemoval:
    def _reauthenticate(self, client: APIClient, browser: Browser):
        options = client.post(f"{API}/reauthenticate/webauthn/options/")
        assert options.status_code == status.HTTP_200_OK, options.content
        return client.post(f"{API}/reauthenticate/", {"webauthn": browser.get(options.json())}, format="json")

    def test_removal_needs_a_recent_authentication_which_a_passkey_gives(self, staff, mailoutbox):
        browser = _with_passkey(staff)
        passkey = WebAuthnCredential.objects.get(user=staff)
        client = bearer_client(staff)

        with time_machine.travel(timezone.now() + timedelta(seconds=61)):
            refused = client.delete(f"{API}/mfa/webauthn/{passkey.pk}/")
            confirmed = self._reauthenticate(client, browser)
            removed = client.delete(f"{API}/mfa/webauthn/{passkey.pk}/")

        assert refused.status_code == status.HTTP_403_FORBIDDEN
        assert refused.json()["code"] == "reauthentication_required"
        assert confirmed.status_code == status.HTTP_200_OK, confirmed.content
        assert removed.status_code == status.HTTP_204_NO_CONTENT
        assert not WebAuthnCredential.objects.exists()
        assert not RecoveryCode.objects.filter(user=staff).exists()  # the last factor took the codes along
        removal = SecurityEvent.objects.get(user=staff, type=SecurityEvent.Type.MFA_REMOVED)
        assert removal.data["method"] == "webauthn"
        assert "access_token" in password_step(staff)  # a password alone logs in again

    def test_a_passkey_of_another_session_or_person_does_not_reauthenticate(self, staff, student):
        browser = _with_passkey(staff)
        options = bearer_client(staff).post(f"{API}/reauthenticate/webauthn/options/").json()  # another session
        assertion = browser.get(options)

        response = bearer_client(staff).post(f"{API}/reauthenticate/", {"webauthn": assertion}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["code"] == "invalid_code"

    def test_only_ones_own_passkeys_are_removed(self, staff, student):
        _with_passkey(staff)
        passkey = WebAuthnCredential.objects.get(user=staff)

        response = bearer_client(student).delete(f"{API}/mfa/webauthn/{passkey.pk}/")

        assert response.status_code == status.HTTP_404_NOT_FOUND
        assert WebAuthnCredential.objects.filter(pk=passkey.pk).exists()

    def test_an_hods_reset_removes_passkeys(self, hod, staff):
        _with_passkey(staff)

        removed = mfa.mfa_reset(user=staff, actor=hod)

        assert "webauthn" in removed
        assert not WebAuthnCredential.objects.filter(user=staff).exists()


def _assertion(**changes) -> dict:
    body = {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA"},
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "credential",
    [
        None,
        "text",
        [],
        {},
        _assertion(rawId="not base64!"),
        _assertion(rawId="A"),  # one character is no base64
        _assertion(rawId=12),
        _assertion(type="password"),
        _assertion(response={"clientDataJSON": "e30"}),
        _assertion(response={"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": ["AAAA"]}),
        _assertion(response="AAAA"),
        _assertion(rawId="A" * 5000),
        _assertion(response={"clientDataJSON": "A" * 100_000, "authenticatorData": "AAAA", "signature": "AAAA"}),
    ],
)
def test_malformed_assertions_are_400(credential):
    passwordless = APIClient().post(f"{API}/login/webauthn/", {"credential": credential}, format="json")
    second = APIClient().post(f"{API}/login/mfa/", {"mfa_token": "mfa_x", "webauthn": credential}, format="json")

    assert passwordless.status_code == status.HTTP_400_BAD_REQUEST, passwordless.content
    assert second.status_code == status.HTTP_400_BAD_REQUEST, second.content


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"credential": {}},
        {"credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {"clientDataJSON": "e30"}}},
        {"name": 5, "credential": None},
        {"name": "x" * 65, "credential": None},
        {
            "credential": {
                "id": "AAAA",
                "rawId": "AAAA",
                "type": "public-key",
                "response": {"clientDataJSON": "%%", "attestationObject": "AAAA"},
            }
        },
    ],
)
def test_malformed_registrations_are_400(staff, body):
    response = bearer_client(staff).post(f"{API}/mfa/webauthn/register/", body, format="json")

    assert response.status_code == status.HTTP_400_BAD_REQUEST, response.content


def test_well_formed_garbage_is_refused_without_a_500(staff):
    """Valid base64url that is no WebAuthn answer: clientDataJSON that is not JSON, an attestation that is not CBOR."""
    garbage = {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {"clientDataJSON": "AAAA", "attestationObject": "AAAA"},
    }

    registration = bearer_client(staff).post(f"{API}/mfa/webauthn/register/", {"credential": garbage}, format="json")
    login = APIClient().post(f"{API}/login/webauthn/", {"credential": _assertion()}, format="json")

    assert registration.status_code == status.HTTP_400_BAD_REQUEST
    assert login.status_code == status.HTTP_401_UNAUTHORIZED


@pytest.mark.parametrize(
    ("rp_id", "origins", "message"),
    [
        ("", ("https://school.example",), "WEBAUTHN_RP_ID"),
        ("https://school.example", ("https://school.example",), "WEBAUTHN_RP_ID"),
        ("school.example:443", ("https://school.example",), "WEBAUTHN_RP_ID"),
        ("10.0.0.1", ("https://10.0.0.1",), "IP address"),
        ("school.example", (), "WEBAUTHN_ORIGINS"),
        ("school.example", ("http://school.example",), "https"),
        ("school.example", ("https://evil.example",), "not on WEBAUTHN_RP_ID"),
        ("school.example", ("https://school.example/login",), "not an origin"),
    ],
)
def test_settings_that_no_browser_would_accept_stop_start_up(rp_id, origins, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        _webauthn_settings_check(rp_id, origins)


def test_sensible_settings_pass():
    _webauthn_settings_check("school.example", ("https://school.example", "https://app.school.example:8443"))
    _webauthn_settings_check("localhost", ("http://localhost:3000",))


def test_a_forged_attestation_certificate_is_400_not_500(staff):
    """A real answer whose attestation statement carries a certificate that is no certificate (X.509 parsing)."""
    from fido2 import cbor

    from users.services.mfa.webauthn import b64url, b64url_decode

    client = bearer_client(staff)
    credential = Browser(SoftAuthenticator()).create(client.post(f"{API}/mfa/webauthn/register/options/").json())
    attestation = dict(cbor.decode(b64url_decode(credential["response"]["attestationObject"])))
    attestation["attStmt"] = {**attestation["attStmt"], "x5c": [b"not a certificate"]}
    credential["response"]["attestationObject"] = b64url(cbor.encode(attestation))

    response = client.post(f"{API}/mfa/webauthn/register/", {"credential": credential}, format="json")

    assert response.status_code == status.HTTP_400_BAD_REQUEST, response.content
    assert response.json()["code"] == "webauthn_invalid"
    assert not WebAuthnCredential.objects.exists()


@pytest.mark.parametrize(
    ("rp_id", "frontend", "issuer", "origins"),
    [
        (
            "school.example",
            "https://school.example",
            "https://id.school.example/",
            ["https://school.example", "https://id.school.example"],
        ),
        ("school.example", "https://school.example", "https://school.example", ["https://school.example"]),
        ("school.example", "https://school.example", "https://id.other.example", ["https://school.example"]),
        ("school.example", "https://school.example", "http://id.school.example", ["https://school.example"]),
        (
            "localhost",
            "http://localhost:3000",
            "http://localhost:8000",
            ["http://localhost:3000", "http://localhost:8000"],
        ),
        ("localhost", "http://localhost:3000", "http://127.0.0.1:8000", ["http://localhost:3000"]),
    ],
)
def test_the_default_origins_add_the_issuer_when_a_browser_would_accept_it(rp_id, frontend, issuer, origins):
    assert _default_webauthn_origins(rp_id, frontend, issuer) == origins
    _webauthn_settings_check(rp_id, tuple(origins))  # and what they give always passes start-up
