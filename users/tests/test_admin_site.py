"""The admin's login form goes through the one credential check: shared lockouts, the HOD rule, audit records."""

import re

import pytest
from rest_framework import status

from conftest import TEST_PASSWORD
from users.models import SecurityEvent

API = "/api/v1/users"
LOGIN = "/admin/login/?next=/admin/"
INVALID = "Please enter the correct username and password for a staff account."
LOCKED = re.compile(r"Too many failed sign-in attempts\. Try again in (\d+) seconds\.")

pytestmark = pytest.mark.django_db


def _admin_login(client, username: str, password: str, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def _api_login(api_client, username: str, password: str):
    return api_client.post(f"{API}/login/", {"username": username, "password": password}, format="json")


def _entered(client) -> bool:
    return client.get("/admin/").status_code == status.HTTP_200_OK


class TestAdminLogin:
    def test_an_hod_with_the_right_password_enters_and_it_is_audited(self, client, hod):
        response = _admin_login(client, hod.username, TEST_PASSWORD, HTTP_USER_AGENT="browser/1")

        assert response.status_code == status.HTTP_302_FOUND
        assert _entered(client)
        event = SecurityEvent.objects.get(type="login_succeeded")
        assert (event.user_id, event.data, event.ip, event.user_agent) == (
            hod.pk,
            {"channel": "admin", "amr": ["pwd"]},
            "127.0.0.1",
            "browser/1",
        )

    def test_thirty_wrong_passwords_lock_at_five_and_then_the_right_one_is_refused(self, client, hod):
        wrong = [_admin_login(client, hod.username, f"wrong-{n}") for n in range(30)]
        right = _admin_login(client, hod.username, TEST_PASSWORD)

        assert [r.status_code for r in wrong] == [200] * 5 + [429] * 25
        assert INVALID in wrong[0].content.decode()
        assert right.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        seconds = int(LOCKED.search(right.content.decode()).group(1))
        assert 0 < seconds <= 60
        assert int(right["Retry-After"]) == seconds
        assert not _entered(client)
        failed = SecurityEvent.objects.filter(type="login_failed")
        assert failed.count() == 5
        assert {e.data["channel"] for e in failed} == {"admin"}
        assert SecurityEvent.objects.filter(type="lockout").count() == 1

    def test_a_lock_made_through_the_api_holds_on_the_admin(self, client, api_client, hod):
        codes = [_api_login(api_client, hod.username, f"wrong-{n}").status_code for n in range(6)]

        response = _admin_login(client, hod.email, TEST_PASSWORD)

        assert codes == [401] * 5 + [429]
        assert response.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert not _entered(client)

    def test_a_lock_made_on_the_admin_holds_on_the_api(self, client, api_client, hod):
        for n in range(5):
            _admin_login(client, hod.username, f"wrong-{n}")

        response = _api_login(api_client, hod.username, TEST_PASSWORD)

        assert response.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert response.json()["code"] == "locked_out"

    def test_failures_on_both_share_one_budget(self, client, api_client, hod):
        for n in range(3):
            _api_login(api_client, hod.username, f"api-{n}")
        for n in range(2):
            _admin_login(client, hod.username, f"admin-{n}")

        assert _api_login(api_client, hod.username, TEST_PASSWORD).status_code == status.HTTP_429_TOO_MANY_REQUESTS

    def test_the_per_ip_lock_spans_accounts(self, client, hod, settings):
        settings.LOGIN_IP_THRESHOLD = 3
        for n in range(3):
            _admin_login(client, f"someone{n}", "wrong", REMOTE_ADDR="10.4.4.4")

        from_there = _admin_login(client, hod.username, TEST_PASSWORD, REMOTE_ADDR="10.4.4.4")
        from_elsewhere = _admin_login(client, hod.username, TEST_PASSWORD, REMOTE_ADDR="10.4.4.5")

        assert from_there.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert from_elsewhere.status_code == status.HTTP_302_FOUND

    def test_the_client_ip_is_read_as_the_api_reads_it(self, client, hod, settings):
        settings.TRUSTED_PROXY_COUNT = 1

        _admin_login(client, hod.username, "wrong", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.4")

        assert SecurityEvent.objects.get(type="login_failed").ip == "198.51.100.4"

    @pytest.mark.parametrize("role", ["student", "staff"])
    def test_only_hods_enter_and_a_right_password_of_anyone_else_counts_as_a_failure(
        self, request, client, api_client, role
    ):
        user = request.getfixturevalue(role)

        responses = [_admin_login(client, user.username, TEST_PASSWORD) for _ in range(6)]

        assert [r.status_code for r in responses] == [200] * 5 + [429]
        assert INVALID in responses[0].content.decode()  # the same words as a wrong password
        assert not _entered(client)
        assert not SecurityEvent.objects.filter(type="login_succeeded").exists()

    def test_an_inactive_hod_is_refused_like_a_wrong_password(self, client, hod):
        hod.is_active = False
        hod.save(update_fields=["is_active"])

        response = _admin_login(client, hod.username, TEST_PASSWORD)

        assert response.status_code == status.HTTP_200_OK
        assert INVALID in response.content.decode()

    def test_the_locked_page_is_the_same_for_unknown_accounts(self, client, hod):
        for name in (hod.username, "nobody-here"):
            for n in range(5):
                _admin_login(client, name, f"wrong-{n}")

        known = _admin_login(client, hod.username, "wrong")
        unknown = _admin_login(client, "nobody-here", "wrong")

        assert known.status_code == unknown.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert LOCKED.search(known.content.decode())
        assert LOCKED.search(unknown.content.decode())

    def test_the_lock_holds_with_the_cache_unreachable(self, cache_unreachable, client, hod):
        codes = [_admin_login(client, hod.username, "wrong").status_code for _ in range(8)]

        assert codes == [200] * 5 + [429] * 3
        assert _admin_login(client, hod.username, TEST_PASSWORD).status_code == status.HTTP_429_TOO_MANY_REQUESTS

    def test_djangos_authenticate_counts_and_obeys_too(self, client, hod):
        assert not any(client.login(username=hod.username, password=f"wrong-{n}") for n in range(5))

        assert not client.login(username=hod.username, password=TEST_PASSWORD)
        assert _admin_login(client, hod.username, TEST_PASSWORD).status_code == status.HTTP_429_TOO_MANY_REQUESTS
