"""Logging in with a second factor: the policy, login/mfa/, the mfa_token, the lockout, enrolment end to end."""

import subprocess
import sys
import time
from datetime import timedelta

import jwt
import pytest
import time_machine
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied
from django.urls import URLResolver, get_resolver
from django.utils import timezone
from rest_framework import status
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from user_service import settings as project_settings
from users.backends import UsernameOrEmailBackend
from users.models import EventType, MfaChallenge, OutboxMessage, SecurityEvent, UserSession, UserType
from users.services.emails import email_deliver
from users.tests.mfa_support import API, STEP, bearer, code_at, enrol_totp, password_step
from users.tests.servers import ROOT, clean_env

pytestmark = pytest.mark.django_db


def _wrong(code: str) -> str:
    return f"{(int(code) + 500_000) % 1_000_000:06d}"


def _login_mfa(mfa_token: str, **proof: str):
    return APIClient().post(f"{API}/login/mfa/", {"mfa_token": mfa_token, **proof}, format="json")


class TestPolicy:
    def test_the_default_requires_a_factor_of_hods_only(self, tmp_path):
        # The project's own default, read by a fresh process from an environment that does not set it (the suite's
        # fixture empties it for every other test).
        code = "from django.conf import settings as s; print(sorted(s.MFA_REQUIRED_ROLES))"
        env = clean_env(DJANGO_SETTINGS_MODULE="user_service.settings", VAR_DIR=str(tmp_path))
        env.pop("MFA_REQUIRED_ROLES", None)

        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

        assert result.stdout.strip() == "['hod']", result.stderr

    def test_the_settings_role_names_are_the_models(self):
        from users.models import ROLE_NAMES

        assert frozenset(ROLE_NAMES.values()) == project_settings._ROLE_NAMES

    def test_without_a_factor_and_no_requirement_a_password_is_enough(self, make_user):
        hod = make_user(user_type=UserType.HOD)

        body = password_step(hod)

        assert "access_token" in body
        assert jwt.decode(body["access_token"], options={"verify_signature": False})["amr"] == ["pwd"]

    def test_a_confirmed_factor_makes_the_password_answer_mfa_required_and_no_token(self, student):
        enrol_totp(student)

        response = APIClient().post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        body = response.json()
        assert set(body) == {"code", "detail", "mfa_token", "methods", "expires_in"}
        assert body["code"] == "mfa_required"
        assert body["methods"] == ["totp", "recovery_code"]
        assert body["mfa_token"].startswith("mfa_")
        assert body["expires_in"] == 300
        assert not UserSession.objects.filter(user=student).exists()
        assert not SecurityEvent.objects.filter(user=student, type=SecurityEvent.Type.LOGIN_SUCCEEDED).exists()

    def test_a_required_role_without_a_factor_gets_an_enrolment_token(self, settings, hod):
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})

        body = password_step(hod)

        assert body["code"] == "mfa_enrolment_required"
        assert body["methods"] == ["totp", "webauthn"]
        assert "access_token" not in body
        assert MfaChallenge.objects.get(user=hod).purpose == MfaChallenge.Purpose.ENROLMENT

    def test_other_roles_are_not_required(self, settings, student, staff):
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})

        assert "access_token" in password_step(student)
        assert "access_token" in password_step(staff)

    def test_an_empty_setting_requires_nobody(self, settings, hod):
        settings.MFA_REQUIRED_ROLES = frozenset()

        assert "access_token" in password_step(hod)

    def test_a_wrong_password_stays_invalid_credentials_whatever_the_factors(self, settings, hod):
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
        enrol_totp(hod)

        body = password_step(hod, password="not-the-password-at-all")

        assert body == {"detail": "Invalid username/e-mail or password.", "code": "invalid_credentials"}
        assert not MfaChallenge.objects.exists()

    def test_django_authenticate_cannot_skip_the_second_factor(self, student, settings):
        assert authenticate(username=student.username, password=TEST_PASSWORD) == student
        enrol_totp(student)

        # the backend raises PermissionDenied, which authenticate() turns into "nobody"
        assert authenticate(username=student.username, password=TEST_PASSWORD) is None
        with pytest.raises(PermissionDenied, match="second factor"):
            UsernameOrEmailBackend().authenticate(None, username=student.username, password=TEST_PASSWORD)

    def test_an_unknown_role_name_stops_start_up(self):
        result = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            cwd=ROOT,
            env=clean_env(DJANGO_SETTINGS_MODULE="user_service.settings", MFA_REQUIRED_ROLES="hod,teacher"),
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert result.returncode != 0
        assert "MFA_REQUIRED_ROLES" in result.stderr
        assert "teacher" in result.stderr


class TestSecondStep:
    def test_a_code_completes_the_login_with_amr_pwd_otp_mfa(self, student):
        enrolled = enrol_totp(student)
        token = password_step(student)["mfa_token"]

        response = _login_mfa(token, code=enrolled.code())

        assert response.status_code == status.HTTP_200_OK, response.content
        body = response.json()
        assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        assert abs(claims["auth_time"] - time.time()) < 5
        session = UserSession.objects.get(user=student)
        assert session.amr == ["pwd", "otp", "mfa"]
        succeeded = SecurityEvent.objects.get(user=student, type=SecurityEvent.Type.LOGIN_SUCCEEDED)
        assert succeeded.data["amr"] == ["pwd", "otp", "mfa"]
        assert succeeded.data["method"] == "totp"
        used = SecurityEvent.objects.get(user=student, type=SecurityEvent.Type.MFA_USED)
        assert used.data == {"method": "totp", "purpose": "login", "channel": "api"}
        event = OutboxMessage.objects.get(topic=EventType.USER_MFA_CHANGED, payload__data__change="used")
        assert event.payload["data"]["method"] == "totp"

    def test_each_step_asks_the_database_a_bounded_number_of_times(self, student, django_assert_max_num_queries):
        # Step one: user, lockout (3), each factor for the policy (2) and for `methods` (3), the token.
        # Step two: the token with the person and profile, factors (2), lockout (3), the code's device and its step,
        # then one transaction (token spent, session, refresh record, last_login, two audit records, the event).
        enrolled = enrol_totp(student)
        with django_assert_max_num_queries(10):
            token = password_step(student)["mfa_token"]

        with django_assert_max_num_queries(17):
            response = _login_mfa(token, code=enrolled.code())

        assert response.status_code == status.HTTP_200_OK, response.content
        assert response.json()["user"]["id"] == student.pk

    def test_the_mfa_token_is_single_use(self, student):
        enrolled = enrol_totp(student)
        token = password_step(student)["mfa_token"]
        assert _login_mfa(token, code=enrolled.code()).status_code == status.HTTP_200_OK

        again = _login_mfa(token, code=enrolled.code(steps=1))

        assert again.status_code == status.HTTP_401_UNAUTHORIZED
        assert again.json()["code"] == "mfa_token_invalid"

    def test_the_mfa_token_expires_after_five_minutes(self, student):
        enrolled = enrol_totp(student)
        token = password_step(student)["mfa_token"]

        with time_machine.travel(timezone.now() + timedelta(seconds=301)):
            response = _login_mfa(token, code=enrolled.code())

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["code"] == "mfa_token_invalid"

    def test_the_mfa_token_works_within_its_five_minutes(self, student):
        enrolled = enrol_totp(student)
        token = password_step(student)["mfa_token"]

        with time_machine.travel(timezone.now() + timedelta(seconds=290)):
            response = _login_mfa(token, code=enrolled.code())

        assert response.status_code == status.HTTP_200_OK

    def test_a_made_up_or_tampered_mfa_token_is_refused(self, student):
        enrolled = enrol_totp(student)
        token = password_step(student)["mfa_token"]

        for bad in ("mfa_" + "A" * 43, token[:-1] + ("A" if token[-1] != "A" else "B"), "not-an-mfa-token"):
            response = _login_mfa(bad, code=enrolled.code())
            assert response.status_code == status.HTTP_401_UNAUTHORIZED
            assert response.json()["code"] == "mfa_token_invalid"

    def test_a_token_of_another_way_in_is_refused(self, student):
        from users.services import mfa

        enrolled = enrol_totp(student)
        token, _ = mfa.challenge_issue(
            user=student, purpose="factor", amr=["pwd"], channel="admin", ip=None, user_agent=""
        )

        response = _login_mfa(token, code=enrolled.code())

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["code"] == "mfa_token_invalid"

    def test_only_a_hash_of_the_mfa_token_is_stored(self, student):
        enrol_totp(student)
        token = password_step(student)["mfa_token"]

        challenge = MfaChallenge.objects.get(user=student)
        assert token not in challenge.token_hash
        assert len(challenge.token_hash) == 64

    def test_a_replayed_code_is_refused(self, student):
        enrolled = enrol_totp(student)
        code = enrolled.code()
        assert _login_mfa(password_step(student)["mfa_token"], code=code).status_code == status.HTTP_200_OK

        response = _login_mfa(password_step(student)["mfa_token"], code=code)

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response.json()["code"] == "invalid_code"

    def test_a_wrong_code_keeps_the_token_for_another_try(self, student):
        enrolled = enrol_totp(student)
        token = password_step(student)["mfa_token"]

        wrong = _login_mfa(token, code=_wrong(enrolled.code()))
        right = _login_mfa(token, code=enrolled.code())

        assert wrong.status_code == status.HTTP_401_UNAUTHORIZED
        assert wrong.json()["code"] == "invalid_code"
        assert right.status_code == status.HTTP_200_OK
        failed = SecurityEvent.objects.get(user=student, type=SecurityEvent.Type.MFA_FAILED)
        assert failed.data == {"channel": "api", "method": "totp"}

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"code": "123456"},
            {"mfa_token": "mfa_x"},
            {"mfa_token": "mfa_x", "code": "123456", "recovery_code": "abcd-efgh-jkmn-pqrs"},
            {"mfa_token": "mfa_x", "code": "12345"},
            {"mfa_token": "mfa_x", "code": "123456", "extra": 1},
        ],
    )
    def test_malformed_bodies_are_400(self, body):
        assert APIClient().post(f"{API}/login/mfa/", body, format="json").status_code == status.HTTP_400_BAD_REQUEST


class TestLockout:
    def test_wrong_codes_lock_the_account_at_the_threshold(self, student, settings):
        enrolled = enrol_totp(student)
        token = password_step(student)["mfa_token"]
        wrong = _wrong(enrolled.code())

        statuses = [_login_mfa(token, code=wrong).status_code for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD)]
        locked = _login_mfa(token, code=enrolled.code())

        assert statuses == [status.HTTP_401_UNAUTHORIZED] * settings.LOGIN_LOCKOUT_THRESHOLD
        assert locked.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert int(locked["Retry-After"]) > 0
        # the password too: one lock for the account, whichever factor was guessed
        assert password_step(student)["code"] == "locked_out"

    def test_a_right_password_does_not_reset_the_count_of_guessed_codes(self, student, settings):
        enrolled = enrol_totp(student)
        wrong = _wrong(enrolled.code())
        threshold = settings.LOGIN_LOCKOUT_THRESHOLD

        # Each round: the password again (a fresh mfa_token), then guesses; the count keeps growing across rounds.
        outcomes = []
        for _ in range(threshold):
            token = password_step(student).get("mfa_token")
            if token is None:
                outcomes.append("password locked")
                break
            outcomes.append(_login_mfa(token, code=wrong).status_code)

        assert outcomes == [status.HTTP_401_UNAUTHORIZED] * (threshold - 1) + [status.HTTP_401_UNAUTHORIZED]
        assert password_step(student)["code"] == "locked_out"

    def test_a_right_code_clears_the_count(self, student, settings):
        enrolled = enrol_totp(student)
        token = password_step(student)["mfa_token"]
        wrong = _wrong(enrolled.code())
        for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD - 1):
            _login_mfa(token, code=wrong)
        assert _login_mfa(token, code=enrolled.code()).status_code == status.HTTP_200_OK

        token = password_step(student)["mfa_token"]
        statuses = [_login_mfa(token, code=wrong).status_code for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD - 1)]

        assert statuses == [status.HTTP_401_UNAUTHORIZED] * (settings.LOGIN_LOCKOUT_THRESHOLD - 1)

    def test_wrong_recovery_codes_count_too(self, student, settings):
        enrol_totp(student)
        token = password_step(student)["mfa_token"]

        for _ in range(settings.LOGIN_LOCKOUT_THRESHOLD):
            _login_mfa(token, recovery_code="aaaa-bbbb-cccc-dddd")

        assert _login_mfa(token, recovery_code="aaaa-bbbb-cccc-dddd").status_code == status.HTTP_429_TOO_MANY_REQUESTS


class TestRecoveryCodeLogin:
    def test_a_recovery_code_logs_in_once_and_emails_the_owner(self, student, mailoutbox):
        codes = enrol_totp(student).recovery_codes

        response = _login_mfa(password_step(student)["mfa_token"], recovery_code=codes[0])

        assert response.status_code == status.HTTP_200_OK
        claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        message = OutboxMessage.objects.get(topic="mfa_recovery_code_used", payload__user_id=student.pk)
        assert message.payload["context"]["recovery_codes_remaining"] == 9
        assert email_deliver(message) is None
        assert [mail.to for mail in mailoutbox] == [[student.email]]
        assert "A recovery code was used" in mailoutbox[0].subject
        assert "9 unused recovery codes remain" in mailoutbox[0].body
        used = SecurityEvent.objects.get(user=student, type=SecurityEvent.Type.MFA_USED)
        assert used.data["method"] == "recovery_code"
        event = OutboxMessage.objects.get(topic=EventType.USER_MFA_CHANGED, payload__data__method="recovery_code")
        assert event.payload["data"]["change"] == "used"

        again = _login_mfa(password_step(student)["mfa_token"], recovery_code=codes[0])
        assert again.status_code == status.HTTP_401_UNAUTHORIZED
        assert again.json()["code"] == "invalid_code"


class TestEnrolmentFlow:
    def test_an_hod_sets_up_an_app_with_the_enrolment_token_and_completes_the_login(self, settings, hod):
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
        refused = password_step(hod)
        assert refused["code"] == "mfa_enrolment_required"
        token = refused["mfa_token"]
        as_enrolling = bearer(token)

        overview = as_enrolling.get(f"{API}/mfa/")
        started = as_enrolling.post(f"{API}/mfa/totp/")
        secret = started.json()["secret"]
        confirm_code = code_at(secret, time.time())
        confirmed = as_enrolling.post(f"{API}/mfa/totp/confirm/", {"code": confirm_code}, format="json")
        replay = _login_mfa(token, code=confirm_code)  # the code just used is spent
        after_confirm = as_enrolling.get(f"{API}/mfa/")  # the token no longer enrols anything
        done = _login_mfa(token, code=code_at(secret, time.time() + STEP))

        assert overview.status_code == status.HTTP_200_OK
        assert overview.json()["required"] is True
        assert overview.json()["methods"] == []
        assert started.status_code == status.HTTP_201_CREATED
        assert confirmed.status_code == status.HTTP_200_OK
        assert len(confirmed.json()["recovery_codes"]) == 10
        assert replay.status_code == status.HTTP_401_UNAUTHORIZED
        assert after_confirm.status_code == status.HTTP_401_UNAUTHORIZED
        assert done.status_code == status.HTTP_200_OK, done.content
        claims = jwt.decode(done.json()["access_token"], options={"verify_signature": False})
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        # and from now on the password alone is no longer enough
        assert password_step(hod)["code"] == "mfa_required"
        enrolled = SecurityEvent.objects.get(user=hod, type=SecurityEvent.Type.MFA_ENROLLED)
        assert enrolled.data == {"method": "totp"}
        assert OutboxMessage.objects.filter(topic=EventType.USER_MFA_CHANGED, payload__data__change="enrolled").exists()
        assert OutboxMessage.objects.filter(topic="mfa_changed", payload__user_id=hod.pk).exists()

    def test_login_mfa_before_a_factor_is_confirmed_is_a_conflict(self, settings, hod):
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
        token = password_step(hod)["mfa_token"]

        response = _login_mfa(token, code="123456")

        assert response.status_code == status.HTTP_409_CONFLICT
        assert response.json()["code"] == "mfa_not_enrolled"

    def test_a_second_factor_token_is_no_bearer_token_even_on_enrolment_endpoints(self, student):
        enrol_totp(student)
        token = password_step(student)["mfa_token"]

        response = bearer(token).post(f"{API}/mfa/totp/")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_an_enrolment_token_cannot_remove_or_regenerate(self, settings, hod):
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
        client = bearer(password_step(hod)["mfa_token"])

        assert client.delete(f"{API}/mfa/totp/").status_code == status.HTTP_401_UNAUTHORIZED
        assert client.post(f"{API}/mfa/recovery-codes/").status_code == status.HTTP_401_UNAUTHORIZED

    def test_an_expired_enrolment_token_enrols_nothing(self, settings, hod):
        settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
        client = bearer(password_step(hod)["mfa_token"])

        with time_machine.travel(timezone.now() + timedelta(seconds=301)):
            response = client.post(f"{API}/mfa/totp/")

        assert response.status_code == status.HTTP_401_UNAUTHORIZED


# Every route under /api/v1/users/ with each method its view answers: an enrolment mfa_token as the bearer token is
# refused (401) by all of them but the enrolment endpoints. Public endpoints take no bearer token at all: there the
# token grants nothing, and they answer exactly as they do without it.
ENROLMENT_ROUTES = {
    ("mfa/", "get"),
    ("mfa/totp/", "post"),
    ("mfa/totp/confirm/", "post"),
    ("mfa/webauthn/register/options/", "post"),
    ("mfa/webauthn/register/", "post"),
}


def _api_routes() -> list[tuple[str, str, bool]]:
    """(route, method, public) for every route of the users API."""
    api = next(p for p in get_resolver().url_patterns if str(p.pattern) == "api/v1/users/")
    assert isinstance(api, URLResolver)
    routes = []
    for pattern in api.url_patterns:
        view = getattr(pattern.callback, "view_class", None)
        public = getattr(view, "authentication_classes", None) == []
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view, method) and method in getattr(view, "http_method_names", ()):
                routes.append((str(pattern.pattern), method, public))
    return routes


ROUTES = _api_routes()


def test_the_route_list_covers_the_mfa_endpoints():
    listed = {(route, method) for route, method, _ in ROUTES}

    assert listed >= ENROLMENT_ROUTES
    assert {("login/mfa/", "post"), ("reauthenticate/", "post"), ("<int:pk>/mfa/reset/", "post")} <= listed
    assert len(listed) > 40


@pytest.mark.parametrize(("route", "method", "public"), ROUTES, ids=[f"{m.upper()} {r}" for r, m, _ in ROUTES])
def test_an_enrolment_token_works_only_on_the_enrolment_endpoints(settings, make_user, route, method, public):
    settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
    hod = make_user(user_type=UserType.HOD)
    token = password_step(hod)["mfa_token"]
    path = f"{API}/" + route.replace("<int:pk>", str(hod.adminhod_profile.pk if "admins" in route else hod.pk))
    path = path.replace("<uuid:session_id>", "6f1c8f7e-5a4b-4c3d-9e2f-1a0b9c8d7e6f")

    def call(client: APIClient):
        return getattr(client, method)(path, {}, format="json") if method != "get" else client.get(path)

    answer = call(bearer(token))

    if (route, method) in ENROLMENT_ROUTES:
        assert answer.status_code in (status.HTTP_200_OK, status.HTTP_201_CREATED, status.HTTP_400_BAD_REQUEST)
    elif public:
        assert answer.status_code == call(APIClient()).status_code
        assert "access_token" not in (answer.json() if answer.content else {})
    else:
        assert answer.status_code == status.HTTP_401_UNAUTHORIZED, answer.content[:300]


def test_an_mfa_token_is_refused_by_validate_token_and_introspection(settings, hod, service_client):
    settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
    token = password_step(hod)["mfa_token"]

    validate = bearer(token).get(f"{API}/validate-token/")
    introspect = service_client("tokens:introspect").post(f"{API}/token/introspect/", {"token": token}, format="json")

    assert validate.status_code == status.HTTP_401_UNAUTHORIZED
    assert validate.json()["valid"] is False
    assert introspect.json() == {"active": False}


def test_a_new_password_voids_logins_waiting_for_their_second_step(settings, hod, make_user):
    from users.services.people import password_set_by_admin

    settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
    token = password_step(hod)["mfa_token"]  # someone who had the old password

    password_set_by_admin(user=hod, password="a-Brand-new-passphrase-31", actor=make_user(user_type=UserType.HOD))

    assert bearer(token).post(f"{API}/mfa/totp/").status_code == status.HTTP_401_UNAUTHORIZED


def test_the_second_step_holds_while_redis_is_down(cache_unreachable, student):
    enrolled = enrol_totp(student)

    token = password_step(student)["mfa_token"]
    response = APIClient().post(f"{API}/login/mfa/", {"mfa_token": token, "code": enrolled.code()}, format="json")

    assert response.status_code == status.HTTP_200_OK


@pytest.mark.django_db(transaction=True)
def test_one_mfa_token_completes_one_login_even_when_raced(student, in_parallel):
    codes = enrol_totp(student).recovery_codes
    token = password_step(student)["mfa_token"]

    def second_step(i: int) -> int:
        body = {"mfa_token": token, "recovery_code": codes[i]}
        return APIClient().post(f"{API}/login/mfa/", body, format="json").status_code

    statuses = in_parallel(4, second_step)

    assert sorted(statuses) == [status.HTTP_200_OK] + [status.HTTP_401_UNAUTHORIZED] * 3
    assert UserSession.objects.filter(user=student).count() == 1
