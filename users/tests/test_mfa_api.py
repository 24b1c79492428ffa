"""The MFA endpoints: the caller's factors, enrolment, removal, recovery codes, reauthentication and step-up, an HOD's
reset, amr in validate-token and introspection, and the permission matrix of every new endpoint."""

import itertools
import time
from datetime import timedelta

import jwt
import pytest
import time_machine
from django.utils import timezone
from rest_framework import status
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from users import tokens
from users.models import (
    CustomUser,
    EventType,
    MfaChallenge,
    OutboxMessage,
    RecoveryCode,
    SecurityEvent,
    ServiceAccount,
    SessionEndReason,
    TOTPDevice,
    UserSession,
    UserType,
    WebAuthnCredential,
)
from users.services import mfa
from users.services.emails import email_deliver
from users.tests.mfa_support import API, STEP, bearer, code_at, enrol_totp, password_step
from users.tests.principals import access_claims, bearer_client, service_token

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "another-Long-passphrase-77"


@pytest.fixture(autouse=True)
def _short_reauthentication_window(settings):
    """A minute, so a test can let it pass while its access token (five minutes) still works."""
    settings.REAUTH_SECONDS = 60


def _later(seconds: int = 61):
    """The clock ``seconds`` from now: by default just past the reauthentication window."""
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds))


def _mfa_login(user: CustomUser, code: str) -> dict:
    token = password_step(user)["mfa_token"]
    response = APIClient().post(f"{API}/login/mfa/", {"mfa_token": token, "code": code}, format="json")
    assert response.status_code == status.HTTP_200_OK, response.content
    return response.json()


class TestOverview:
    def test_lists_the_callers_factors_without_secrets(self, staff):
        enrol_totp(staff)

        body = bearer_client(staff).get(f"{API}/mfa/").json()

        assert body["methods"] == ["totp", "recovery_code"]
        assert body["required"] is False
        assert body["totp"]["enabled"] is True
        assert body["totp"]["pending"] is False
        assert body["totp"]["confirmed_at"]
        assert body["recovery_codes"]["remaining"] == 10
        assert "secret" not in str(body)

    def test_nothing_set_up(self, student, settings):
        settings.MFA_REQUIRED_ROLES = frozenset({"student"})

        body = bearer_client(student).get(f"{API}/mfa/").json()

        assert body == {
            "methods": [],
            "required": True,
            "totp": {"enabled": False, "pending": False, "confirmed_at": None, "last_used_at": None},
            "recovery_codes": {"remaining": 0, "created_at": None},
            "webauthn": [],
        }


class TestTOTPEndpoints:
    def test_set_up_and_confirm_through_the_api(self, staff):
        client = bearer_client(staff)

        started = client.post(f"{API}/mfa/totp/")
        secret = started.json()["secret"]
        confirmed = client.post(f"{API}/mfa/totp/confirm/", {"code": code_at(secret, time.time())}, format="json")

        assert started.status_code == status.HTTP_201_CREATED
        assert set(started.json()) == {"secret", "otpauth_uri", "qr_svg"}
        assert started.json()["otpauth_uri"].startswith("otpauth://totp/")
        assert started["Cache-Control"] == "no-store"
        assert confirmed.status_code == status.HTTP_200_OK
        assert len(confirmed.json()["recovery_codes"]) == 10
        assert password_step(staff)["code"] == "mfa_required"

    def test_a_wrong_confirmation_code_is_400(self, staff):
        client = bearer_client(staff)
        secret = client.post(f"{API}/mfa/totp/").json()["secret"]
        wrong = f"{(int(code_at(secret, time.time())) + 1) % 1_000_000:06d}"

        response = client.post(f"{API}/mfa/totp/confirm/", {"code": wrong}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["code"] == "invalid_code"

    def test_confirming_with_nothing_pending_and_starting_twice_are_conflicts(self, staff):
        client = bearer_client(staff)
        nothing = client.post(f"{API}/mfa/totp/confirm/", {"code": "123456"}, format="json")
        enrol_totp(staff)
        twice = client.post(f"{API}/mfa/totp/")

        assert (nothing.status_code, nothing.json()["code"]) == (status.HTTP_409_CONFLICT, "no_pending_enrolment")
        assert (twice.status_code, twice.json()["code"]) == (status.HTTP_409_CONFLICT, "totp_already_enrolled")

    def test_removing_after_a_fresh_login_needs_no_reauthentication(self, staff, mailoutbox):
        enrol_totp(staff)
        client = bearer_client(staff)

        response = client.delete(f"{API}/mfa/totp/")

        assert response.status_code == status.HTTP_204_NO_CONTENT
        assert not TOTPDevice.objects.filter(user=staff).exists()
        assert not RecoveryCode.objects.filter(user=staff).exists()
        removed = SecurityEvent.objects.get(user=staff, type=SecurityEvent.Type.MFA_REMOVED)
        assert removed.data == {"method": "totp", "recovery_codes_removed": 10}
        event = OutboxMessage.objects.get(topic=EventType.USER_MFA_CHANGED, payload__data__change="removed")
        assert event.payload["data"]["method"] == "totp"
        notice = OutboxMessage.objects.filter(topic="mfa_changed", payload__user_id=staff.pk).latest("created_at")
        email_deliver(notice)
        assert "The authenticator app was removed" in mailoutbox[-1].body
        assert "access_token" in password_step(staff)

    def test_removing_with_an_old_authentication_is_refused_until_reauthenticated(self, staff):
        enrol_totp(staff)
        client = bearer_client(staff)

        with _later():
            refused = client.delete(f"{API}/mfa/totp/")
            reauthenticated = client.post(f"{API}/reauthenticate/", {"password": TEST_PASSWORD}, format="json")
            removed = client.delete(f"{API}/mfa/totp/")

        assert refused.status_code == status.HTTP_403_FORBIDDEN
        assert refused.json()["code"] == "reauthentication_required"
        assert reauthenticated.status_code == status.HTTP_200_OK
        assert reauthenticated.json()["expires_in"] == 60
        assert removed.status_code == status.HTTP_204_NO_CONTENT


class TestRecoveryCodeEndpoint:
    def test_regenerates_after_a_recent_authentication(self, staff):
        old = enrol_totp(staff).recovery_codes
        client = bearer_client(staff)

        response = client.post(f"{API}/mfa/recovery-codes/")

        assert response.status_code == status.HTTP_200_OK
        new = response.json()["recovery_codes"]
        assert len(new) == 10
        assert set(new).isdisjoint(old)
        assert SecurityEvent.objects.filter(user=staff, type=SecurityEvent.Type.RECOVERY_CODES_GENERATED).exists()
        assert OutboxMessage.objects.filter(
            topic=EventType.USER_MFA_CHANGED, payload__data__change="recovery_codes_generated"
        ).exists()

    def test_needs_a_recent_authentication(self, staff):
        enrol_totp(staff)
        client = bearer_client(staff)

        with _later():
            response = client.post(f"{API}/mfa/recovery-codes/")

        assert response.status_code == status.HTTP_403_FORBIDDEN
        assert response.json()["code"] == "reauthentication_required"

    def test_without_a_factor_is_a_conflict(self, staff):
        response = bearer_client(staff).post(f"{API}/mfa/recovery-codes/")

        assert (response.status_code, response.json()["code"]) == (status.HTTP_409_CONFLICT, "mfa_not_enabled")


class TestReauthenticate:
    def test_with_a_code_marks_the_session_and_records_the_use(self, staff):
        enrolled = enrol_totp(staff)
        client = bearer_client(staff)

        with _later(90):
            response = client.post(f"{API}/reauthenticate/", {"code": enrolled.code()}, format="json")
            allowed = client.post(f"{API}/mfa/recovery-codes/")

        assert response.status_code == status.HTTP_200_OK
        assert allowed.status_code == status.HTTP_200_OK
        assert UserSession.objects.get(user=staff).reauthenticated_at is not None
        record = SecurityEvent.objects.get(user=staff, type=SecurityEvent.Type.REAUTHENTICATED)
        assert record.data["method"] == "totp"
        used = SecurityEvent.objects.get(user=staff, type=SecurityEvent.Type.MFA_USED)
        assert used.data["purpose"] == "reauthenticate"

    def test_a_replayed_code_is_refused(self, staff):
        enrolled = enrol_totp(staff)
        client = bearer_client(staff)
        code = enrolled.code()
        client.post(f"{API}/reauthenticate/", {"code": code}, format="json")

        response = client.post(f"{API}/reauthenticate/", {"code": code}, format="json")

        assert (response.status_code, response.json()["code"]) == (status.HTTP_400_BAD_REQUEST, "invalid_code")

    def test_with_a_recovery_code_emails_the_owner(self, staff):
        codes = enrol_totp(staff).recovery_codes

        response = bearer_client(staff).post(f"{API}/reauthenticate/", {"recovery_code": codes[0]}, format="json")

        assert response.status_code == status.HTTP_200_OK
        message = OutboxMessage.objects.get(topic="mfa_recovery_code_used", payload__user_id=staff.pk)
        assert message.payload["context"]["purpose"] == "reauthenticate"

    def test_a_wrong_password_is_400_and_counts_toward_the_lockout(self, staff, settings):
        client = bearer_client(staff)

        answers = [
            client.post(f"{API}/reauthenticate/", {"password": "wrong-password-again"}, format="json")
            for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD)
        ]
        locked = client.post(f"{API}/reauthenticate/", {"password": TEST_PASSWORD}, format="json")

        assert {a.status_code for a in answers} == {status.HTTP_400_BAD_REQUEST}
        assert answers[0].json()["code"] == "invalid_password"
        assert locked.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert password_step(staff)["code"] == "locked_out"

    @pytest.mark.parametrize(
        "body",
        [{}, {"password": TEST_PASSWORD, "code": "123456"}, {"code": "12345"}, {"recovery_code": "", "x": 1}],
    )
    def test_exactly_one_proof(self, staff, body):
        response = bearer_client(staff).post(f"{API}/reauthenticate/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST


class TestStepUp:
    """Sensitive changes need an authentication within REAUTH_SECONDS; a fresh login counts as one."""

    def test_change_password(self, staff):
        client = bearer_client(staff)
        body = {"old_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}

        with _later():
            refused = client.post(f"{API}/change-password/", body, format="json")
            client.post(f"{API}/reauthenticate/", {"password": TEST_PASSWORD}, format="json")
            changed = client.post(f"{API}/change-password/", body, format="json")

        assert (refused.status_code, refused.json()["code"]) == (403, "reauthentication_required")
        assert changed.status_code == status.HTTP_200_OK

    def test_change_password_right_after_login(self, staff):
        body = {"old_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}

        response = bearer_client(staff).post(f"{API}/change-password/", body, format="json")

        assert response.status_code == status.HTTP_200_OK

    def test_a_new_email_address_but_not_other_profile_fields(self, staff):
        client = bearer_client(staff)

        with _later():
            names = client.patch(f"{API}/profile/", {"first_name": "Ada"}, format="json")
            same = client.patch(f"{API}/profile/", {"email": staff.email.upper()}, format="json")
            refused = client.patch(f"{API}/profile/", {"email": "new-address@school.test"}, format="json")
            client.post(f"{API}/reauthenticate/", {"password": TEST_PASSWORD}, format="json")
            changed = client.patch(f"{API}/profile/", {"email": "new-address@school.test"}, format="json")

        assert names.status_code == status.HTTP_200_OK
        assert same.status_code == status.HTTP_200_OK
        assert (refused.status_code, refused.json()["code"]) == (403, "reauthentication_required")
        assert changed.status_code == status.HTTP_200_OK
        staff.refresh_from_db()
        assert staff.email == "new-address@school.test"

    def test_creating_an_hod_but_not_a_student(self, hod):
        client = bearer_client(hod)
        new_hod = {"user": {"username": "hod2", "email": "hod2@school.test"}, "department": "Physics"}
        new_student = {"user": {"username": "st2", "email": "st2@school.test"}, "student_id": "S-2"}

        with _later():
            refused = client.post(f"{API}/admins/", new_hod, format="json")
            student = client.post(f"{API}/students/", new_student, format="json")
            client.post(f"{API}/reauthenticate/", {"password": TEST_PASSWORD}, format="json")
            created = client.post(f"{API}/admins/", new_hod, format="json")

        assert (refused.status_code, refused.json()["code"]) == (403, "reauthentication_required")
        assert student.status_code == status.HTTP_201_CREATED
        assert created.status_code == status.HTTP_201_CREATED

    def test_the_users_collection_obeys_the_same_step_ups(self, hod, student):
        """Creating an HOD at the prefix and a new own e-mail at {id}/ need it, as at admins/ and profile/."""
        head, pupil = bearer_client(hod), bearer_client(student)
        new_hod = {"email": "hod3@school.test", "user_type": "1", "department": "Art"}
        new_student = {"email": "st3@school.test", "user_type": "3"}

        with _later():
            refused_hod = head.post(f"{API}/", new_hod, format="json")
            created_student = head.post(f"{API}/", new_student, format="json")
            renamed = pupil.put(f"{API}/{student.pk}/", {"first_name": "Ada", "email": None}, format="json")
            refused_email = pupil.patch(f"{API}/{student.pk}/", {"email": "mine@school.test"}, format="json")
            head.post(f"{API}/reauthenticate/", {"password": TEST_PASSWORD}, format="json")
            created_hod = head.post(f"{API}/", new_hod, format="json")

        assert (refused_hod.status_code, refused_hod.json()["code"]) == (403, "reauthentication_required")
        assert created_student.status_code == status.HTTP_201_CREATED
        assert renamed.status_code == status.HTTP_200_OK
        assert (refused_email.status_code, refused_email.json()["code"]) == (403, "reauthentication_required")
        assert created_hod.status_code == status.HTTP_201_CREATED
        student.refresh_from_db()
        assert student.email != "mine@school.test"

    def test_an_hod_giving_someone_else_a_new_address_needs_it_too(self, hod, student):
        """The rule is one (users.services.step_up): a new address for any account, at {id}/ and the role endpoints;
        the admin asks the same."""
        head = bearer_client(hod)
        profile_id = student.student_profile.pk

        with _later():
            by_id = head.patch(f"{API}/{student.pk}/", {"email": "elsewhere@school.test"}, format="json")
            by_role = head.patch(f"{API}/students/{profile_id}/", {"user": {"email": "x@school.test"}}, format="json")
            same = head.patch(
                f"{API}/students/{profile_id}/", {"user": {"email": "STUDENT@school.test"}}, format="json"
            )
            renamed = head.patch(f"{API}/students/{profile_id}/", {"user": {"first_name": "Ada"}}, format="json")
            head.post(f"{API}/reauthenticate/", {"password": TEST_PASSWORD}, format="json")
            moved = head.patch(f"{API}/students/{profile_id}/", {"user": {"email": "x@school.test"}}, format="json")

        assert (by_id.status_code, by_id.json()["code"]) == (403, "reauthentication_required")
        assert (by_role.status_code, by_role.json()["code"]) == (403, "reauthentication_required")
        assert same.status_code == renamed.status_code == status.HTTP_200_OK
        assert moved.status_code == status.HTTP_200_OK
        student.refresh_from_db()
        assert student.email == "x@school.test"

    def test_a_reauthentication_grows_old_too(self, staff):
        client = bearer_client(staff)

        with _later(120) as traveller:
            client.post(f"{API}/reauthenticate/", {"password": TEST_PASSWORD}, format="json")
            traveller.shift(61)
            response = client.post(f"{API}/mfa/recovery-codes/")

        assert (response.status_code, response.json()["code"]) == (403, "reauthentication_required")

    def test_reauthentication_belongs_to_its_session(self, staff):
        enrol_totp(staff)
        first, second = bearer_client(staff), bearer_client(staff)

        with _later():
            first.post(f"{API}/reauthenticate/", {"password": TEST_PASSWORD}, format="json")
            response = second.post(f"{API}/mfa/recovery-codes/")

        assert response.status_code == status.HTTP_403_FORBIDDEN


class TestReset:
    def test_an_hod_resets_a_persons_factors_ending_their_sessions(self, hod, staff, mailoutbox):
        enrol_totp(staff)
        victim_client = bearer_client(staff)
        pending = password_step(staff)["mfa_token"]

        response = bearer_client(hod).post(f"{API}/{staff.pk}/mfa/reset/", {}, format="json")

        assert response.status_code == status.HTTP_200_OK
        assert sorted(response.json()["removed"]) == ["recovery_code", "totp"]
        assert mfa.methods_for(staff) == []
        assert victim_client.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        assert set(UserSession.objects.filter(user=staff).values_list("end_reason", flat=True)) == {
            SessionEndReason.MFA_RESET
        }
        assert MfaChallenge.objects.get(user=staff).used_at is not None
        again = APIClient().post(f"{API}/login/mfa/", {"mfa_token": pending, "code": "123456"}, format="json")
        assert again.json()["code"] == "mfa_token_invalid"
        record = SecurityEvent.objects.get(user=staff, type=SecurityEvent.Type.MFA_RESET)
        assert record.actor == hod
        assert record.data["removed"] == ["recovery_code", "totp"]
        assert record.data["sessions_ended"] == 1
        assert record.data["via"] == "api"
        event = OutboxMessage.objects.get(topic=EventType.USER_MFA_CHANGED, payload__data__change="reset")
        assert event.payload["user_id"] == staff.pk
        email_deliver(OutboxMessage.objects.get(topic="mfa_reset", payload__user_id=staff.pk))
        assert [mail.to for mail in mailoutbox] == [[staff.email]]
        assert "second factor of your account was reset" in mailoutbox[0].subject
        # they log in again with the password alone (their role does not require a factor)
        assert "access_token" in password_step(staff)

    def test_a_reset_hod_must_set_up_a_factor_again(self, hod, make_user, settings):
        other = make_user(user_type=UserType.HOD)
        enrol_totp(other)
        bearer_client(hod).post(f"{API}/{other.pk}/mfa/reset/", {}, format="json")
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})

        assert password_step(other)["code"] == "mfa_enrolment_required"

    def test_not_yourself_not_unknown_ids_and_not_without_a_recent_authentication(self, hod, staff):
        client = bearer_client(hod)

        yourself = client.post(f"{API}/{hod.pk}/mfa/reset/", {}, format="json")
        unknown = client.post(f"{API}/{staff.pk + 1000}/mfa/reset/", {}, format="json")
        with _later():
            stale = client.post(f"{API}/{staff.pk}/mfa/reset/", {}, format="json")

        assert (yourself.status_code, yourself.json()["code"]) == (409, "mfa_reset_self")
        assert unknown.status_code == status.HTTP_404_NOT_FOUND
        assert (stale.status_code, stale.json()["code"]) == (403, "reauthentication_required")

    def test_unknown_body_keys_are_refused(self, hod, staff):
        response = bearer_client(hod).post(f"{API}/{staff.pk}/mfa/reset/", {"all": True}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST


class TestClaims:
    def test_validate_token_and_introspection_report_amr_and_auth_time(self, staff, service_client):
        enrolled = enrol_totp(staff)
        body = _mfa_login(staff, enrolled.code())
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})

        validated = bearer(body["access_token"]).get(f"{API}/validate-token/").json()
        introspected = (
            service_client("tokens:introspect")
            .post(f"{API}/token/introspect/", {"token": body["access_token"]}, format="json")
            .json()
        )

        assert validated["amr"] == ["pwd", "otp", "mfa"]
        assert validated["auth_time"] == claims["auth_time"]
        assert introspected["amr"] == ["pwd", "otp", "mfa"]
        assert introspected["auth_time"] == claims["auth_time"]

    def test_a_password_login_reports_pwd(self, staff, login):
        body = login(staff)

        validated = bearer(body["access_token"]).get(f"{API}/validate-token/").json()

        assert validated["amr"] == ["pwd"]

    def test_a_token_minted_without_amr_still_works_and_counts_as_a_password(self, staff, service_client):
        session = UserSession.objects.get(pk=bearer_client_session(staff))
        old = tokens.encode(access_claims(staff, str(session.pk)))  # no amr, no auth_time

        validated = bearer(old).get(f"{API}/validate-token/")
        introspected = service_client("tokens:introspect").post(
            f"{API}/token/introspect/", {"token": old}, format="json"
        )
        profile = bearer(old).get(f"{API}/profile/")

        assert validated.status_code == status.HTTP_200_OK
        assert validated.json()["amr"] == ["pwd"]
        assert validated.json()["auth_time"] is None
        assert introspected.json()["active"] is True
        assert introspected.json()["amr"] == ["pwd"]
        assert profile.status_code == status.HTTP_200_OK

    @pytest.mark.parametrize("claims", [{"amr": "pwd"}, {"amr": [1]}, {"auth_time": "yesterday"}, {"auth_time": 1.5}])
    def test_malformed_amr_or_auth_time_is_refused(self, staff, claims):
        session_id = bearer_client_session(staff)
        token = tokens.encode(access_claims(staff, session_id, **claims))

        assert bearer(token).get(f"{API}/validate-token/").status_code == status.HTTP_401_UNAUTHORIZED

    def test_refresh_keeps_the_logins_amr_and_auth_time(self, staff):
        enrolled = enrol_totp(staff)
        body = _mfa_login(staff, enrolled.code())
        first = jwt.decode(body["access_token"], options={"verify_signature": False})

        with _later(120):
            refreshed = APIClient().post(
                f"{API}/token/refresh/", {"refresh_token": body["refresh_token"]}, format="json"
            )
        second = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})

        assert second["amr"] == ["pwd", "otp", "mfa"]
        assert second["auth_time"] == first["auth_time"]
        assert second["iat"] >= first["iat"] + 120


def bearer_client_session(user: CustomUser) -> str:
    from users.services.auth import session_start

    return str(session_start(user=user, ip=None, user_agent="tests").session.id)


# --- Permission matrix of the MFA endpoints (README) ------------------------------------------------------------

ROLES = ("anonymous", "student", "staff", "hod", "service", "service_without_scope")
R, C, D = status.HTTP_200_OK, status.HTTP_201_CREATED, status.HTTP_204_NO_CONTENT
U, F, X = status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN, status.HTTP_409_CONFLICT
B, N = status.HTTP_400_BAD_REQUEST, status.HTTP_404_NOT_FOUND

# (method, path, expected per role in ROLES). People callers have an authenticator app set up and a fresh login.
MATRIX = [
    ("get", "mfa/", (U, R, R, R, F, F)),
    ("post", "mfa/totp/", (U, X, X, X, F, F)),  # reached: one app per person, theirs is set up already
    ("delete", "mfa/totp/", (U, D, D, D, F, F)),
    ("post", "mfa/totp/confirm/", (U, X, X, X, F, F)),  # reached: nothing pending
    ("post", "mfa/recovery-codes/", (U, R, R, R, F, F)),
    ("post", "reauthenticate/", (U, R, R, R, F, F)),
    ("post", "login/mfa/", (U, U, U, U, U, U)),  # public: the made-up mfa_token is refused, whoever calls
    ("post", "{other}/mfa/reset/", (U, F, F, R, F, F)),
    ("post", "mfa/webauthn/register/options/", (U, R, R, R, F, F)),
    ("post", "mfa/webauthn/register/", (U, B, B, B, F, F)),  # reached: the made-up answer is refused
    ("delete", "mfa/webauthn/{passkey}/", (U, N, N, N, F, F)),  # reached: someone else's passkey is not found
    ("post", "login/mfa/webauthn/options/", (U, U, U, U, U, U)),  # public: the made-up mfa_token is refused
    ("post", "login/webauthn/options/", (R, R, R, R, R, R)),  # public
    ("post", "login/webauthn/", (U, U, U, U, U, U)),  # public: the made-up answer is refused, whoever calls
    ("post", "reauthenticate/webauthn/options/", (U, X, X, X, F, F)),  # reached: no passkey of their own
]
CASES = [
    pytest.param(method, path, role, expected[i], id=f"{method.upper()} {path} as {role}")
    for (method, path, expected), (i, role) in itertools.product(MATRIX, enumerate(ROLES))
]
MADE_UP_ANSWER = {
    "id": "AAAA",
    "rawId": "AAAA",
    "type": "public-key",
    "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA"},
}
BODIES = {
    "mfa/totp/confirm/": {"code": "123456"},
    "reauthenticate/": {"password": TEST_PASSWORD},
    "login/mfa/": {"mfa_token": "mfa_" + "x" * 43, "code": "123456"},
    "mfa/webauthn/register/": {
        "credential": {**MADE_UP_ANSWER, "response": {"clientDataJSON": "e30", "attestationObject": "oA"}}
    },
    "login/mfa/webauthn/options/": {"mfa_token": "mfa_" + "x" * 43},
    "login/webauthn/": {"credential": MADE_UP_ANSWER},
}


@pytest.mark.parametrize(("method", "path", "role", "expected"), CASES)
def test_permission_matrix(make_user, method, path, role, expected):
    if role == "anonymous":
        client = APIClient()
    elif role.startswith("service"):
        ServiceAccount.objects.create(name="attendance", client_id="attendance", secret_hash="x", scopes=[])
        client = bearer(service_token("attendance", ["users:read"] if role == "service" else ["attendance:write"]))
    else:
        user = make_user(user_type={"student": UserType.STUDENT, "staff": UserType.STAFF, "hod": UserType.HOD}[role])
        enrol_totp(user)
        client = bearer_client(user)
    other = make_user(user_type=UserType.STAFF)
    enrol_totp(other)
    passkey = WebAuthnCredential.objects.create(
        user=other, name="Key", credential_id="AAAA", user_handle=b"h", public_key=b"k"
    )
    url = f"{API}/" + path.format(other=other.pk, passkey=passkey.pk)

    if method == "post":
        response = client.post(url, BODIES.get(path, {}), format="json")
    else:
        response = getattr(client, method)(url)

    assert response.status_code == expected, response.content[:300]
    if expected >= 400:
        assert "detail" in response.json()


def test_the_code_of_the_login_step_drifts_like_every_code(staff):
    enrolled = enrol_totp(staff)

    body = _mfa_login(staff, code_at(enrolled.secret, time.time() + STEP))

    assert "access_token" in body


def test_an_operator_resets_the_last_hod_with_the_command(hod):
    from io import StringIO

    from django.core.management import call_command

    enrol_totp(hod)
    output = StringIO()

    call_command("mfa_reset", hod.email.upper(), stdout=output)

    assert "Removed from hod: recovery_code, totp" in output.getvalue()
    assert mfa.methods_for(hod) == []
    record = SecurityEvent.objects.get(user=hod, type=SecurityEvent.Type.MFA_RESET)
    assert (record.actor, record.data["via"]) == (None, "command")
