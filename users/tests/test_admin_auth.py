"""The admin's sign-in pages: the second factor, enrolment and "confirm it's you", through the same owners as the API
(one lockout, one policy, the same audit), with real TOTP codes from pyotp."""

import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.utils import timezone
from rest_framework import status
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from users.admin_auth.session import PENDING_KEY
from users.models import (
    CustomUser,
    MfaChallenge,
    OutboxMessage,
    RecoveryCode,
    SecurityEvent,
    ServiceAccount,
    TOTPDevice,
    UserSession,
    UserType,
)
from users.services.auth import session_start
from users.tests.admin_support import change_form
from users.tests.mfa_support import code_at, enrol_totp, password_step

pytestmark = pytest.mark.django_db

API = "/api/v1/users"
LOGIN = "/admin/login/"
SECOND_STEP = "/admin/login/second-step/"
ENROL = "/admin/login/enrol/"
REAUTH = "/admin/reauthenticate/"
NEW_PASSWORD = "another-Long-passphrase-77"
SECRET_SHOWN = re.compile(r'<code id="totp-secret"[^>]*>([A-Z2-7]+)</code>')
LOCKED = re.compile(r"Too many failed sign-in attempts\. Try again in (\d+) seconds\.")


def _password(client, user: CustomUser, password: str = TEST_PASSWORD, next_url: str = "/admin/"):
    return client.post(f"{LOGIN}?next={next_url}", {"username": user.username, "password": password})


def _entered(client) -> bool:
    return client.get("/admin/").status_code == status.HTTP_200_OK


def _signed_in_to_django(client) -> bool:
    return "_auth_user_id" in client.session


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _later(seconds: float):
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds))


@pytest.fixture
def mfa_policy(settings):
    settings.MFA_REQUIRED_ROLES = frozenset({"hod"})
    return settings


@pytest.fixture
def hod_with_app(hod):
    return enrol_totp(hod)


@pytest.fixture
def hod_admin(client, hod, hod_with_app):
    """An HOD signed in to the admin through its pages: password, then a code."""
    _password(client, hod)
    response = client.post(SECOND_STEP, {"code": hod_with_app.code()})
    assert response.status_code == status.HTTP_302_FOUND, response.content
    return client


class TestSecondStep:
    def test_a_right_password_leads_to_the_second_page_and_signs_nobody_in_yet(self, client, hod, hod_with_app):
        response = _password(client, hod)

        assert (response.status_code, response["Location"]) == (302, SECOND_STEP)
        assert not _signed_in_to_django(client)
        assert not _entered(client)
        token = client.session[PENDING_KEY]["mfa_token"]
        challenge = MfaChallenge.objects.get(user=hod)
        assert token.startswith("mfa_")
        assert token not in challenge.token_hash
        assert (challenge.channel, challenge.purpose, challenge.used_at) == ("admin", "factor", None)
        page = client.get(SECOND_STEP)
        assert page.status_code == status.HTTP_200_OK
        assert 'name="code"' in page.content.decode()
        assert 'name="recovery_code"' in page.content.decode()
        assert not SecurityEvent.objects.filter(type="login_succeeded").exists()

    def test_the_right_code_signs_in_where_the_hod_was_going_and_is_audited_like_the_api(
        self, client, hod, hod_with_app
    ):
        _password(client, hod, next_url="/admin/users/customuser/")

        response = client.post(SECOND_STEP, {"code": hod_with_app.code()}, HTTP_USER_AGENT="browser/2")

        assert (response.status_code, response["Location"]) == (302, "/admin/users/customuser/")
        assert _entered(client)
        assert PENDING_KEY not in client.session
        event = SecurityEvent.objects.get(type="login_succeeded")
        assert (event.user_id, event.data, event.user_agent) == (
            hod.pk,
            {"channel": "admin", "amr": ["pwd", "otp", "mfa"], "method": "totp"},
            "browser/2",
        )
        assert MfaChallenge.objects.get(user=hod).used_at is not None
        assert not UserSession.objects.filter(user=hod).exists()  # the admin's session is Django's own

    def test_a_wrong_code_is_refused_audited_and_the_step_stays_open(self, client, hod, hod_with_app):
        _password(client, hod)
        wrong = str((int(hod_with_app.code()) + 1) % 1_000_000).zfill(6)

        refused = client.post(SECOND_STEP, {"code": wrong})
        accepted = client.post(SECOND_STEP, {"code": hod_with_app.code()})

        assert refused.status_code == status.HTTP_200_OK
        assert "The code is wrong, expired or already used." in refused.content.decode()
        failed = SecurityEvent.objects.get(type="mfa_failed")
        assert failed.data == {"channel": "admin", "method": "totp"}
        assert accepted.status_code == status.HTTP_302_FOUND
        assert _entered(client)

    @pytest.mark.parametrize("body", [{}, {"code": "12ab56"}, {"code": "123456", "recovery_code": "x" * 16}])
    def test_malformed_input_is_a_form_error_and_counts_nothing(self, client, hod, hod_with_app, body):
        _password(client, hod)

        response = client.post(SECOND_STEP, body)

        assert response.status_code == status.HTTP_200_OK
        assert response.context["form"].errors
        assert not SecurityEvent.objects.filter(type="mfa_failed").exists()
        assert not _entered(client)

    def test_a_code_used_once_is_refused_the_second_time(self, client, hod, hod_with_app):
        code = hod_with_app.code()
        _password(client, hod)
        client.post(SECOND_STEP, {"code": code})
        client.post("/admin/logout/")

        _password(client, hod)
        replay = client.post(SECOND_STEP, {"code": code})

        assert replay.status_code == status.HTTP_200_OK
        assert "already used" in replay.content.decode()
        assert not _entered(client)

    def test_a_recovery_code_signs_in_once_and_e_mails_the_owner(self, client, hod, hod_with_app):
        recovery = hod_with_app.recovery_codes[0]
        _password(client, hod)

        response = client.post(SECOND_STEP, {"recovery_code": recovery.upper().replace("-", " ")})

        assert response.status_code == status.HTTP_302_FOUND
        assert _entered(client)
        assert RecoveryCode.objects.filter(user=hod, used_at__isnull=False).count() == 1
        assert OutboxMessage.objects.filter(topic="mfa_recovery_code_used", payload__user_id=hod.pk).exists()
        event = SecurityEvent.objects.get(type="login_succeeded")
        assert event.data["method"] == "recovery_code"
        client.post("/admin/logout/")
        _password(client, hod)
        assert client.post(SECOND_STEP, {"recovery_code": recovery}).status_code == status.HTTP_200_OK
        assert not _entered(client)

    def test_an_expired_step_sends_back_to_the_password_page(self, client, hod, hod_with_app, settings):
        _password(client, hod)

        with _later(settings.MFA_TOKEN_SECONDS + 1):
            response = client.post(SECOND_STEP, {"code": hod_with_app.code()})

        assert (response.status_code, response["Location"]) == (302, f"{LOGIN}?next=%2Fadmin%2F")
        assert "Please sign in again" in " ".join(_messages(response))
        assert PENDING_KEY not in client.session
        assert not _entered(client)

    def test_a_spent_step_cannot_sign_in_again(self, client, hod, hod_with_app):
        _password(client, hod)
        spent = client.session[PENDING_KEY]
        client.post(SECOND_STEP, {"code": hod_with_app.code()})
        client.post("/admin/logout/")
        session = client.session
        session[PENDING_KEY] = spent
        session.save()

        response = client.post(SECOND_STEP, {"code": hod_with_app.code(steps=1)})

        assert response.status_code == status.HTTP_302_FOUND
        assert response["Location"].startswith(LOGIN)
        assert not _entered(client)

    def test_an_api_mfa_token_does_not_complete_an_admin_sign_in(self, client, hod, hod_with_app):
        api_token = password_step(hod)["mfa_token"]
        session = client.session
        session[PENDING_KEY] = {"mfa_token": api_token, "step": "mfa_required", "next": "/admin/"}
        session.save()

        response = client.post(SECOND_STEP, {"code": hod_with_app.code()})

        assert response.status_code == status.HTTP_302_FOUND
        assert response["Location"].startswith(LOGIN)
        assert not _entered(client)

    def test_the_second_page_without_a_password_step_sends_to_the_login(self, client):
        response = client.get(SECOND_STEP)

        assert response.status_code == status.HTTP_302_FOUND
        assert response["Location"].startswith(LOGIN)

    def test_the_next_address_is_never_another_site(self, client, hod, hod_with_app):
        _password(client, hod, next_url="https://evil.example/")

        response = client.post(SECOND_STEP, {"code": hod_with_app.code()})

        assert response["Location"] == "/admin/"


class TestSharedLockout:
    def test_five_wrong_codes_on_the_admin_lock_the_api_login(self, client, hod, hod_with_app):
        _password(client, hod)
        codes = [client.post(SECOND_STEP, {"code": f"00000{n}"}).status_code for n in range(6)]

        api = APIClient().post(f"{API}/login/", {"username": hod.username, "password": TEST_PASSWORD}, format="json")

        assert codes == [200] * 5 + [429]
        assert api.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert SecurityEvent.objects.filter(type="lockout").count() == 1

    def test_a_lock_made_through_the_api_holds_on_the_second_page(self, client, hod, hod_with_app):
        _password(client, hod)  # the password step before the lock
        for n in range(5):
            APIClient().post(f"{API}/login/", {"username": hod.username, "password": f"x-{n}"}, format="json")

        response = client.post(SECOND_STEP, {"code": hod_with_app.code()})

        assert response.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        seconds = int(LOCKED.search(response.content.decode()).group(1))
        assert int(response["Retry-After"]) == seconds > 0
        assert not _entered(client)

    def test_wrong_codes_on_the_admin_and_the_api_share_one_budget(self, client, hod, hod_with_app):
        token = password_step(hod)["mfa_token"]
        for n in range(3):
            APIClient().post(f"{API}/login/mfa/", {"mfa_token": token, "code": f"00000{n}"}, format="json")
        _password(client, hod)
        statuses = [client.post(SECOND_STEP, {"code": f"11111{n}"}).status_code for n in range(3)]

        assert statuses == [200, 200, 429]


class TestSignInRate:
    """The admin's sign-in posts count toward the client's sign-in rate, on the counter the API's login/ uses."""

    @pytest.fixture(autouse=True)
    def _two_per_minute(self, settings):
        rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login": "2/min"}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    def test_the_password_page_shares_the_api_login_rate(self, client, hod):
        APIClient().post(f"{API}/login/", {"username": hod.username, "password": "wrong-1"}, format="json")
        client.post(LOGIN, {"username": hod.username, "password": "wrong-2"})

        response = client.post(LOGIN, {"username": hod.username, "password": TEST_PASSWORD})

        assert response.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert int(response["Retry-After"]) > 0
        assert not _entered(client)
        assert client.get(LOGIN).status_code == status.HTTP_200_OK  # reading the page is not an attempt

    def test_codes_on_the_second_page_count_too(self, client, hod, hod_with_app):
        _password(client, hod)  # 1
        client.post(SECOND_STEP, {"code": "000000"})  # 2

        response = client.post(SECOND_STEP, {"code": hod_with_app.code()})

        assert response.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert not _entered(client)


class TestEnrolment:
    def test_an_hod_without_a_factor_sets_one_up_and_is_signed_in(self, client, hod, mfa_policy):
        response = _password(client, hod)
        assert (response.status_code, response["Location"]) == (302, ENROL)
        assert not _signed_in_to_django(client)

        page = client.get(ENROL)
        html = page.content.decode()
        secret = SECRET_SHOWN.search(html).group(1)
        assert "<svg" in html
        assert "TOTP QR code" in html
        assert page["Cache-Control"].startswith("no-store") or "no-store" in page["Cache-Control"]
        done = client.post(ENROL, {"code": code_at(secret, time.time())})

        assert done.status_code == status.HTTP_200_OK
        shown = re.findall(r"<li>([2-9a-z]{4}-[2-9a-z]{4}-[2-9a-z]{4}-[2-9a-z]{4})</li>", done.content.decode())
        assert len(shown) == 10
        assert _entered(client)
        assert TOTPDevice.objects.get(user=hod).confirmed_at is not None
        event = SecurityEvent.objects.get(type="login_succeeded")
        assert event.data == {"channel": "admin", "amr": ["pwd", "otp", "mfa"], "method": "totp", "enrolled": True}
        assert OutboxMessage.objects.filter(topic="user.mfa_changed", payload__user_id=hod.pk).exists()
        # the codes shown work (once) at the next sign-in
        client.post("/admin/logout/")
        _password(client, hod)
        assert client.post(SECOND_STEP, {"recovery_code": shown[0]}).status_code == status.HTTP_302_FOUND

    def test_a_wrong_code_keeps_the_person_out_and_the_app_pending(self, client, hod, mfa_policy):
        _password(client, hod)
        client.get(ENROL)

        response = client.post(ENROL, {"code": "000000"})

        assert response.status_code == status.HTTP_200_OK
        assert "The code is wrong or expired" in response.content.decode()
        assert "start again with a new QR code" in response.content.decode()
        assert not _entered(client)
        assert TOTPDevice.objects.get(user=hod).confirmed_at is None

    def test_starting_again_replaces_the_pending_secret(self, client, hod, mfa_policy):
        _password(client, hod)
        first = SECRET_SHOWN.search(client.get(ENROL).content.decode()).group(1)
        second = SECRET_SHOWN.search(client.get(ENROL).content.decode()).group(1)

        stale = client.post(ENROL, {"code": code_at(first, time.time())})
        fresh = client.post(ENROL, {"code": code_at(second, time.time())})

        assert first != second
        assert stale.status_code == status.HTTP_200_OK
        assert "wrong" in stale.content.decode()
        assert fresh.status_code == status.HTTP_200_OK
        assert _entered(client)

    def test_the_enrolment_page_needs_an_enrolment_step(self, client, hod, hod_with_app):
        assert client.get(ENROL)["Location"].startswith(LOGIN)
        _password(client, hod)  # a factor step, not an enrolment

        assert client.get(ENROL)["Location"].startswith(LOGIN)

    def test_the_second_page_sends_an_enrolment_to_the_enrolment_page(self, client, hod, mfa_policy):
        _password(client, hod)

        assert client.get(SECOND_STEP)["Location"] == ENROL

    def test_an_expired_enrolment_starts_again(self, client, hod, mfa_policy, settings):
        _password(client, hod)

        with _later(settings.MFA_TOKEN_SECONDS + 1):
            response = client.get(ENROL)

        assert response["Location"].startswith(LOGIN)
        assert not TOTPDevice.objects.filter(user=hod).exists()


class TestWhoIsAsked:
    def test_with_no_required_role_and_no_factor_the_password_is_enough(self, client, hod, settings):
        settings.MFA_REQUIRED_ROLES = frozenset()

        response = _password(client, hod)

        assert (response.status_code, response["Location"]) == (302, "/admin/")
        assert _entered(client)
        assert SecurityEvent.objects.get(type="login_succeeded").data == {"channel": "admin", "amr": ["pwd"]}

    def test_a_factor_is_asked_for_even_when_no_role_requires_one(self, client, hod, hod_with_app, settings):
        settings.MFA_REQUIRED_ROLES = frozenset()

        assert _password(client, hod)["Location"] == SECOND_STEP

    @pytest.mark.parametrize("role", ["staff", "student"])
    def test_others_with_a_factor_get_no_second_page_but_the_usual_refusal(self, request, client, role, mfa_policy):
        user = request.getfixturevalue(role)
        enrol_totp(user)

        response = _password(client, user)

        assert response.status_code == status.HTTP_200_OK
        assert "Please enter the correct username and password" in response.content.decode()
        assert not MfaChallenge.objects.filter(user=user).exists()

    def test_staff_without_a_factor_still_log_in_to_the_api_with_a_password(self, staff, mfa_policy, login):
        assert "access_token" in login(staff)

    def test_service_accounts_are_unaffected(self, service_client, mfa_policy):
        client = service_client("users:read")

        assert client.get(f"{API}/users/").status_code == status.HTTP_200_OK


class TestStepUp:
    def test_creating_an_hod_asks_to_confirm_then_returns_to_the_form(self, hod_admin, settings):
        new_hod = {
            "username": "hod2",
            "email": "hod2@school.test",
            "user_type": str(UserType.HOD),
            "usable_password": "false",
        }
        with _later(settings.REAUTH_SECONDS + 1):
            asked = hod_admin.post("/admin/users/customuser/add/", new_hod)
            student = hod_admin.post(
                "/admin/users/customuser/add/",
                {**new_hod, "username": "s2", "email": "s2@school.test", "user_type": "3"},
            )
            back_to = parse_qs(urlsplit(asked["Location"]).query)["next"][0]
            back = hod_admin.post(REAUTH, {"password": TEST_PASSWORD, "next": back_to})
            form = hod_admin.get(back["Location"])
            created = hod_admin.post("/admin/users/customuser/add/", new_hod)

        assert asked.status_code == status.HTTP_302_FOUND
        assert asked["Location"].startswith(REAUTH)
        assert student.status_code == status.HTTP_302_FOUND
        assert "/reauthenticate/" not in student["Location"]
        assert back["Location"] == "/admin/users/customuser/add/?username=hod2&email=hod2%40school.test&user_type=1"
        assert 'value="hod2@school.test"' in form.content.decode()
        assert created.status_code == status.HTTP_302_FOUND
        assert CustomUser.objects.filter(username="hod2", user_type=UserType.HOD).exists()
        event = SecurityEvent.objects.get(type="reauthenticated")
        assert event.data == {"method": "password", "channel": "admin"}

    def test_a_recent_sign_in_is_enough(self, hod_admin):
        response = hod_admin.get("/admin/users/serviceaccount/add/")

        assert response.status_code == status.HTTP_200_OK

    def test_a_new_e_mail_address_needs_it_but_other_changes_do_not(self, hod_admin, student, settings):
        url = f"/admin/users/customuser/{student.pk}/change/"
        data = change_form(hod_admin, url)

        with _later(settings.REAUTH_SECONDS + 1):
            renamed = hod_admin.post(url, {**data, "first_name": ["Ada"]})
            moved = hod_admin.post(url, {**data, "email": ["moved@school.test"]})

        assert renamed.status_code == status.HTTP_302_FOUND
        assert "/reauthenticate/" not in renamed["Location"]
        assert moved["Location"].startswith(REAUTH)
        student.refresh_from_db()
        assert (student.first_name, student.email) == ("Ada", "student@school.test")

    def test_setting_a_password_asks_first_and_a_code_confirms_too(
        self, hod_admin, hod, hod_with_app, student, settings
    ):
        url = f"/admin/users/customuser/{student.pk}/password/"
        body = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
        with _later(settings.REAUTH_SECONDS + 1):
            asked = hod_admin.post(url, body)
            confirmed = hod_admin.post(REAUTH, {"code": hod_with_app.code(steps=1), "next": url})
            done = hod_admin.post(url, body)

        assert asked["Location"].startswith(REAUTH)
        assert confirmed["Location"] == url
        assert done.status_code == status.HTTP_302_FOUND
        student.refresh_from_db()
        assert student.check_password(NEW_PASSWORD)

    def test_a_wrong_password_on_the_confirm_page_counts_toward_the_lockout(self, hod_admin, hod, settings):
        with _later(settings.REAUTH_SECONDS + 1):
            tries = [hod_admin.post(REAUTH, {"password": f"wrong-{n}", "next": "/admin/"}) for n in range(6)]

        assert [t.status_code for t in tries] == [200] * 5 + [429]
        assert "password is wrong" in tries[0].content.decode()
        api = APIClient().post(f"{API}/login/", {"username": hod.username, "password": TEST_PASSWORD}, format="json")
        assert api.status_code == status.HTTP_429_TOO_MANY_REQUESTS

    def test_the_confirm_page_returns_only_within_the_site(self, hod_admin):
        response = hod_admin.post(REAUTH, {"password": TEST_PASSWORD, "next": "https://evil.example/"})

        assert response["Location"] == "/admin/"

    def test_creating_a_service_account_asks_first(self, hod_admin, settings):
        with _later(settings.REAUTH_SECONDS + 1):
            asked = hod_admin.post("/admin/users/serviceaccount/add/", {"name": "lms", "client_id": "lms"})

        assert asked["Location"].startswith(REAUTH)
        assert not ServiceAccount.objects.filter(client_id="lms").exists()

    def test_resetting_someones_factors_asks_first_then_removes_them_and_ends_their_sessions(
        self, hod_admin, hod, make_user, settings
    ):
        other = make_user(user_type=UserType.HOD, username="hod-b", email="hod-b@school.test")
        enrol_totp(other)
        login = session_start(user=other, ip=None, user_agent="", amr=["pwd", "otp", "mfa"])
        url = f"/admin/users/customuser/{other.pk}/mfa-reset/"

        with _later(settings.REAUTH_SECONDS + 1):
            asked = hod_admin.post(url)
            hod_admin.post(REAUTH, {"password": TEST_PASSWORD, "next": url})
            page = hod_admin.get(url)
            done = hod_admin.post(url)

        assert asked["Location"].startswith(REAUTH)
        assert "Yes, reset their second factors" in page.content.decode()
        assert done["Location"] == f"/admin/users/customuser/{other.pk}/change/"
        assert not TOTPDevice.objects.filter(user=other).exists()
        assert UserSession.objects.get(pk=login.session.id).ended_at is not None
        reset = SecurityEvent.objects.get(type="mfa_reset", user=other)
        assert (reset.actor_id, reset.data["via"], sorted(reset.data["removed"])) == (
            int(hod_admin.session["_auth_user_id"]),
            "admin",
            ["recovery_code", "totp"],
        )

    def test_an_hod_cannot_reset_their_own_factors_here(self, hod_admin, hod):
        response = hod_admin.post(f"/admin/users/customuser/{hod.pk}/mfa-reset/", follow=True)

        assert "You cannot reset your own factors" in response.content.decode()
        assert TOTPDevice.objects.filter(user=hod).exists()
