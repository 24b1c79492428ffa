"""Brute-force defence: account and IP lockouts, growing waits, Retry-After, parallel bursts, audit."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from rest_framework import status

from users.models import SecurityEvent
from users.services import lockout
from users.services.service_accounts import service_account_create

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


def _guess(subject: lockout.Subject) -> str:
    """One wrong attempt through the lockout protocol: 'failed' or 'locked'."""
    try:
        lockout.attempt_reserve(subject)
    except lockout.AccountLocked:
        return "locked"
    lockout.attempt_failed(subject)
    return "failed"


class TestProtocol:
    def test_locks_at_the_threshold_and_refuses_even_the_right_password(self, settings):
        subject = lockout.Subject.for_login(user_id=7, identifier="x", ip="10.0.0.1")

        outcomes = [_guess(subject) for _ in range(8)]

        assert outcomes == ["failed"] * 5 + ["locked"] * 3
        with pytest.raises(lockout.AccountLocked) as locked:
            lockout.attempt_reserve(subject)  # whatever the password would have been
        assert 55 <= locked.value.extra["retry_after"] <= 60

    def test_waits_grow_with_repeated_lockouts(self, settings):
        subject = lockout.Subject.for_login(user_id=7, identifier="x", ip=None)
        waits = []
        for _ in range(3):
            for _ in range(5):
                _guess(subject)
            with pytest.raises(lockout.AccountLocked) as locked:
                lockout.attempt_reserve(subject)
            waits.append(locked.value.extra["retry_after"])
            from django.core.cache import cache

            cache.delete(subject.key("account-lock", subject.account))  # the cool-off passes

        assert [round(w, -1) for w in waits] == [60, 120, 240]

    def test_capped(self, settings):
        settings.LOGIN_LOCKOUT_SECONDS = 1000
        settings.LOGIN_LOCKOUT_MAX_SECONDS = 1500
        subject = lockout.Subject.for_login(user_id=8, identifier="x", ip=None)
        from django.core.cache import cache

        for _ in range(2):
            for _ in range(5):
                _guess(subject)
            with pytest.raises(lockout.AccountLocked) as locked:
                lockout.attempt_reserve(subject)
            cache.delete(subject.key("account-lock", subject.account))

        assert locked.value.extra["retry_after"] <= 1500

    def test_success_resets_the_count(self):
        subject = lockout.Subject.for_login(user_id=9, identifier="x", ip=None)
        for _ in range(4):
            _guess(subject)
        lockout.attempt_reserve(subject)
        lockout.attempt_succeeded(subject)

        assert [_guess(subject) for _ in range(5)] == ["failed"] * 5

    def test_fifty_parallel_guesses_evaluate_at_most_k(self):
        subject = lockout.Subject.for_login(user_id=10, identifier="x", ip=None)
        barrier = threading.Barrier(50)

        def guess(_):
            barrier.wait()
            return _guess(subject)

        with ThreadPoolExecutor(max_workers=50) as pool:
            outcomes = list(pool.map(guess, range(50)))

        assert outcomes.count("failed") <= 5 + 2
        assert outcomes.count("locked") >= 43
        assert SecurityEvent.objects.filter(type="lockout").count() == 1  # one burst, one lockout

    def test_ip_lock_across_accounts(self, settings):
        settings.LOGIN_IP_THRESHOLD = 10
        outcomes = [_guess(lockout.Subject.for_login(user_id=n, identifier="x", ip="10.9.9.9")) for n in range(12)]

        assert outcomes[:10] == ["failed"] * 10
        assert outcomes[10:] == ["locked"] * 2
        other_ip = lockout.Subject.for_login(user_id=99, identifier="x", ip="10.9.9.8")
        assert _guess(other_ip) == "failed"

    def test_unknown_accounts_lock_like_real_ones(self):
        subject = lockout.Subject.for_login(user_id=None, identifier="Ghost@School.test", ip=None)
        same_typed_differently = lockout.Subject.for_login(user_id=None, identifier=" ghost@school.test", ip=None)

        outcomes = [_guess(subject) for _ in range(5)] + [_guess(same_typed_differently)]

        assert outcomes == ["failed"] * 5 + ["locked"]


class TestServiceToken:
    def test_guessing_a_client_secret_is_locked_out(self, api_client):
        account, secret = service_account_create(name="gateway", scopes=[])
        body = {"client_id": account.client_id, "client_secret": "guess"}

        codes = [api_client.post(f"{API}/service-token/", body, format="json").status_code for _ in range(6)]
        right = api_client.post(
            f"{API}/service-token/", {"client_id": account.client_id, "client_secret": secret}, format="json"
        )

        assert codes == [401] * 5 + [429]
        assert right.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert int(right["Retry-After"]) > 0
        assert right.json()["code"] == "locked_out"
        assert SecurityEvent.objects.filter(type="lockout").exists()

    def test_issuing_is_audited(self, api_client):
        account, secret = service_account_create(name="gateway", scopes=[])

        api_client.post(
            f"{API}/service-token/", {"client_id": account.client_id, "client_secret": secret}, format="json"
        )

        event = SecurityEvent.objects.get(type="service_token_issued")
        assert event.data == {"client_id": "gateway"}
        assert event.ip == "127.0.0.1"


class TestLoginLockout:
    def _login(self, api_client, username, password, ip="127.0.0.1"):
        return api_client.post(
            f"{API}/login/", {"username": username, "password": password}, format="json", REMOTE_ADDR=ip
        )

    def test_thirty_wrong_passwords_lock_at_five_and_the_right_one_is_refused(self, api_client, student):
        from conftest import TEST_PASSWORD

        codes = [self._login(api_client, student.username, f"wrong-{n}").status_code for n in range(30)]
        right = self._login(api_client, student.username, TEST_PASSWORD)

        assert codes[:5] == [401] * 5
        assert set(codes[5:]) == {429}
        assert right.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert 0 < int(right["Retry-After"]) <= 60
        assert right.json()["code"] == "locked_out"

    def test_unlocked_after_the_cool_off(self, api_client, student):
        from django.core.cache import cache

        from conftest import TEST_PASSWORD

        for n in range(5):
            self._login(api_client, student.username, f"wrong-{n}")
        subject = lockout.Subject.for_login(user_id=student.pk, identifier="", ip=None)
        cache.delete(subject.key("account-lock", subject.account))  # the cool-off has passed

        assert self._login(api_client, student.username, TEST_PASSWORD).status_code == status.HTTP_200_OK

    def test_the_same_account_attacked_from_many_ips_stays_locked(self, api_client, student):
        codes = [self._login(api_client, student.username, "wrong", ip=f"10.0.0.{n}").status_code for n in range(10)]

        assert codes == [401] * 5 + [429] * 5

    def test_username_and_email_share_one_budget(self, api_client, student):
        names = [student.username, student.email, student.email.upper()] * 3

        codes = [self._login(api_client, name, "wrong").status_code for name in names]

        assert codes[:5] == [401] * 5
        assert set(codes[5:]) == {429}

    def test_unknown_and_known_accounts_get_identical_answers(self, api_client, student):
        known = [self._login(api_client, student.username, "wrong") for _ in range(6)]
        unknown = [self._login(api_client, "nobody-here", "wrong") for _ in range(6)]

        assert [r.status_code for r in known] == [r.status_code for r in unknown] == [401] * 5 + [429]
        assert known[0].json() == unknown[0].json()
        assert known[-1].json() == unknown[-1].json()

    def test_spoofed_forwarded_for_is_ignored_without_trusted_proxies(self, api_client, student, settings):
        settings.LOGIN_IP_THRESHOLD = 3
        for n in range(3):
            api_client.post(
                f"{API}/login/",
                {"username": f"victim{n}", "password": "x"},
                format="json",
                HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
            )

        response = api_client.post(
            f"{API}/login/", {"username": "other", "password": "x"}, format="json", HTTP_X_FORWARDED_FOR="198.51.100.7"
        )

        assert response.status_code == status.HTTP_429_TOO_MANY_REQUESTS  # still counted against 127.0.0.1
