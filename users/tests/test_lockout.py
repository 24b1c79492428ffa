"""Brute-force defence: account and IP lockouts, growing waits, slots, parallel bursts, state in the database."""

import os
import time

import pytest
import requests
from django.db import connection
from rest_framework import status
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from users.models import LockoutCounter, SecurityEvent
from users.services import lockout
from users.services.service_accounts import service_account_create
from users.tests.servers import GunicornServer

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


def _guess(subject: lockout.Subject) -> str:
    """One wrong attempt through the lockout protocol: 'failed' or 'locked'."""
    try:
        attempt = lockout.attempt_begin(subject)
    except lockout.AccountLocked:
        return "locked"
    lockout.attempt_failed(attempt)
    return "failed"


def _cool_off(subject: lockout.Subject) -> None:
    """The running lock's time passes."""
    LockoutCounter.objects.filter(subject=subject.account_key).update(locked_until=time.time() - 1)


def _row(subject: lockout.Subject) -> LockoutCounter | None:
    return LockoutCounter.objects.filter(subject=subject.account_key).first()


class TestProtocol:
    def test_locks_at_the_threshold_and_refuses_even_the_right_password(self):
        subject = lockout.Subject.for_login(user_id=7, identifier="x", ip="10.0.0.1")

        outcomes = [_guess(subject) for _ in range(8)]

        assert outcomes == ["failed"] * 5 + ["locked"] * 3
        with pytest.raises(lockout.AccountLocked) as locked:
            lockout.attempt_begin(subject)  # whatever the password would have been
        assert 55 <= locked.value.extra["retry_after"] <= 60

    def test_waits_grow_with_repeated_lockouts(self):
        subject = lockout.Subject.for_login(user_id=7, identifier="x", ip=None)
        waits = []
        for _ in range(3):
            for _ in range(5):
                _guess(subject)
            with pytest.raises(lockout.AccountLocked) as locked:
                lockout.attempt_begin(subject)
            waits.append(locked.value.extra["retry_after"])
            _cool_off(subject)

        assert [round(w, -1) for w in waits] == [60, 120, 240]

    def test_the_level_is_forgotten_after_a_day(self):
        subject = lockout.Subject.for_login(user_id=7, identifier="x", ip=None)
        for _ in range(5):
            _guess(subject)
        _cool_off(subject)
        LockoutCounter.objects.filter(subject=subject.account_key).update(
            last_locked_at=time.time() - lockout.LEVEL_MEMORY_SECONDS - 1
        )

        for _ in range(5):
            _guess(subject)

        with pytest.raises(lockout.AccountLocked) as locked:
            lockout.attempt_begin(subject)
        assert locked.value.extra["retry_after"] <= 60

    def test_capped(self, settings):
        settings.LOGIN_LOCKOUT_SECONDS = 1000
        settings.LOGIN_LOCKOUT_MAX_SECONDS = 1500
        subject = lockout.Subject.for_login(user_id=8, identifier="x", ip=None)

        for _ in range(2):
            for _ in range(5):
                _guess(subject)
            with pytest.raises(lockout.AccountLocked) as locked:
                lockout.attempt_begin(subject)
            _cool_off(subject)

        assert 1400 < locked.value.extra["retry_after"] <= 1500

    def test_success_resets_the_count_and_leaves_no_row(self):
        subject = lockout.Subject.for_login(user_id=9, identifier="x", ip=None)
        for _ in range(4):
            _guess(subject)
        lockout.attempt_succeeded(lockout.attempt_begin(subject))

        assert _row(subject) is None
        assert [_guess(subject) for _ in range(5)] == ["failed"] * 5

    def test_failures_outside_the_window_are_forgotten(self, settings):
        subject = lockout.Subject.for_login(user_id=9, identifier="x", ip=None)
        for _ in range(4):
            _guess(subject)
        LockoutCounter.objects.filter(subject=subject.account_key).update(
            window_started=time.time() - settings.LOGIN_LOCKOUT_WINDOW_SECONDS - 1
        )

        assert [_guess(subject) for _ in range(5)] == ["failed"] * 5
        assert _guess(subject) == "locked"

    def test_ip_lock_across_accounts(self, settings):
        settings.LOGIN_IP_THRESHOLD = 10
        outcomes = [_guess(lockout.Subject.for_login(user_id=n, identifier="x", ip="10.9.9.9")) for n in range(12)]

        assert outcomes[:10] == ["failed"] * 10
        assert outcomes[10:] == ["locked"] * 2
        other_ip = lockout.Subject.for_login(user_id=99, identifier="x", ip="10.9.9.8")
        assert _guess(other_ip) == "failed"
        assert SecurityEvent.objects.filter(type="lockout", data__scope="ip").count() == 1

    def test_unknown_accounts_lock_like_real_ones(self):
        subject = lockout.Subject.for_login(user_id=None, identifier="Ghost@School.test", ip=None)
        same_typed_differently = lockout.Subject.for_login(user_id=None, identifier=" ghost@school.test", ip=None)

        outcomes = [_guess(subject) for _ in range(5)] + [_guess(same_typed_differently)]

        assert outcomes == ["failed"] * 5 + ["locked"]

    def test_no_raw_identifier_or_address_is_stored(self):
        _guess(lockout.Subject.for_login(user_id=None, identifier="ghost@school.test", ip="203.0.113.9"))

        stored = " ".join(LockoutCounter.objects.values_list("subject", flat=True))
        assert "ghost" not in stored
        assert "203.0.113.9" not in stored


class TestSlots:
    def test_an_attempt_holds_a_slot_until_settled(self):
        subject = lockout.Subject.for_login(user_id=11, identifier="x", ip=None)

        first, second = lockout.attempt_begin(subject), lockout.attempt_begin(subject)
        assert _row(subject).in_flight == 2
        lockout.attempt_succeeded(first)
        assert _row(subject).in_flight == 1
        lockout.attempt_abandoned(second)

        assert _row(subject).in_flight == 0

    def test_full_slots_wait_then_refuse_briefly(self, monkeypatch):
        monkeypatch.setattr(lockout, "SLOT_WAIT_SECONDS", 0.2)
        subject = lockout.Subject.for_login(user_id=12, identifier="x", ip=None)
        held = [lockout.attempt_begin(subject) for _ in range(5)]

        started = time.monotonic()
        with pytest.raises(lockout.AccountLocked) as refused:
            lockout.attempt_begin(subject)

        assert time.monotonic() - started >= 0.2
        assert refused.value.extra == {"retry_after": 1}
        lockout.attempt_succeeded(held[0])
        lockout.attempt_begin(subject)  # a slot was given back

    def test_a_slot_left_by_a_dead_process_is_forgotten(self, monkeypatch):
        monkeypatch.setattr(lockout, "SLOT_WAIT_SECONDS", 0)
        subject = lockout.Subject.for_login(user_id=13, identifier="x", ip=None)
        for _ in range(5):
            lockout.attempt_begin(subject)  # never settled
        LockoutCounter.objects.filter(subject=subject.account_key).update(
            in_flight_since=time.time() - lockout.STALE_SLOT_SECONDS - 1
        )

        lockout.attempt_begin(subject)

        assert _row(subject).in_flight == 1

    def test_client_secrets_take_no_slot_and_a_clean_success_writes_nothing(self, django_assert_num_queries):
        subject = lockout.Subject.for_client(client_id="gateway", ip="10.0.0.1")

        with django_assert_num_queries(1):  # the check's SELECT
            lockout.attempt_succeeded(lockout.attempt_begin(subject))

        assert not LockoutCounter.objects.exists()


@pytest.mark.django_db(transaction=True)
class TestParallelBursts:
    def test_thirty_parallel_guesses_evaluate_exactly_k(self, in_parallel):
        subject = lockout.Subject.for_login(user_id=10, identifier="x", ip=None)
        evaluated = []

        def guess(_):
            try:
                attempt = lockout.attempt_begin(subject)
            except lockout.AccountLocked:
                return "locked"
            evaluated.append(1)
            time.sleep(0.05)  # a password verify
            lockout.attempt_failed(attempt)
            return "failed"

        outcomes = in_parallel(30, guess)

        assert outcomes.count("failed") == len(evaluated) == 5
        assert outcomes.count("locked") == 25
        assert SecurityEvent.objects.filter(type="lockout").count() == 1  # one burst, one lockout

    def test_sixteen_simultaneous_api_logins_with_the_right_password_all_succeed(
        self, student, in_parallel, slow_password_check
    ):
        def login(i):
            return APIClient().post(
                f"{API}/login/",
                {"username": student.username, "password": TEST_PASSWORD},
                format="json",
                REMOTE_ADDR=f"10.5.0.{i}",
            )

        responses = in_parallel(16, login)

        assert [r.status_code for r in responses] == [200] * 16
        assert slow_password_check[0] <= 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
class TestServiceTokenUnderConcurrency:
    """Sixteen clients of one client id at once, against a real multi-process gunicorn."""

    @pytest.fixture
    def server(self, tmp_path):
        env = {**os.environ, "DB_NAME": connection.settings_dict["NAME"], "THROTTLE_SERVICE_TOKEN_RATE": "100000/min"}
        with GunicornServer(env, tmp_path, workers=2, threads=8, static=False) as server:
            yield server

    def _post_all(self, server, bodies: list[dict], in_parallel) -> list[set[int]]:
        """Each client posts its body four times; the status codes each client saw."""

        def post(i):
            url = f"{server.url}{API}/service-token/"
            return {requests.post(url, json=bodies[i], timeout=30).status_code for _ in range(4)}

        return in_parallel(len(bodies), post)

    def test_right_secrets_all_get_tokens(self, server, in_parallel):
        _, secret = service_account_create(name="gateway", scopes=["users:read"])

        codes = self._post_all(server, [{"client_id": "gateway", "client_secret": secret}] * 16, in_parallel)

        assert codes == [{200}] * 16

    def test_right_and_wrong_secrets_mixed_make_no_server_error(self, server, in_parallel):
        _, secret = service_account_create(name="gateway", scopes=["users:read"])
        guessing = [i % 4 == 0 for i in range(16)]
        bodies = [{"client_id": "gateway", "client_secret": "guess" if g else secret} for g in guessing]

        codes = self._post_all(server, bodies, in_parallel)

        for guesses, seen in zip(guessing, codes, strict=True):
            assert seen <= ({401, 429} if guesses else {200, 429}), codes


class TestStateOutlivesTheCache:
    def _lock(self, api_client, user) -> None:
        for n in range(5):
            api_client.post(f"{API}/login/", {"username": user.username, "password": f"wrong-{n}"}, format="json")

    def test_twenty_wrong_passwords_lock_while_the_cache_is_unreachable(self, cache_unreachable, api_client, student):
        codes = [
            api_client.post(f"{API}/login/", {"username": student.username, "password": "wrong"}, format="json")
            for _ in range(20)
        ]
        right = api_client.post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )

        assert [r.status_code for r in codes] == [401] * 5 + [429] * 15
        assert right.status_code == status.HTTP_429_TOO_MANY_REQUESTS

    def test_a_lock_made_before_the_outage_holds_during_it(self, request, api_client, student):
        self._lock(api_client, student)

        request.getfixturevalue("cache_unreachable")
        right = api_client.post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )

        assert right.status_code == status.HTTP_429_TOO_MANY_REQUESTS

    def test_a_lock_holds_after_the_cache_restarts_empty(self, cache_restart_empty, api_client, student):
        self._lock(api_client, student)

        cache_restart_empty()
        right = api_client.post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )

        assert right.status_code == status.HTTP_429_TOO_MANY_REQUESTS


class TestPrune:
    def test_only_rows_with_nothing_left_to_remember_go(self, settings):
        now = time.time()
        old = now - settings.LOGIN_LOCKOUT_WINDOW_SECONDS - 1
        rows = {
            "forgotten": {"failures": 3, "window_started": old},
            "counting": {"failures": 3, "window_started": now},
            "locked": {"window_started": old, "locked_until": now + 60},
            "remembers_its_level": {"window_started": old, "level": 1, "last_locked_at": now - 60},
            "in_flight": {"window_started": old, "in_flight": 1, "in_flight_since": now},
            "slot_of_a_dead_process": {"window_started": old, "in_flight": 1, "in_flight_since": old},
        }
        for name, fields in rows.items():
            LockoutCounter.objects.create(subject=name, **fields)

        assert lockout.lockout_counters_prune(batch_size=100) == 2
        assert set(LockoutCounter.objects.values_list("subject", flat=True)) == {
            "counting",
            "locked",
            "remembers_its_level",
            "in_flight",
        }


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
        codes = [self._login(api_client, student.username, f"wrong-{n}").status_code for n in range(30)]
        right = self._login(api_client, student.username, TEST_PASSWORD)

        assert codes[:5] == [401] * 5
        assert set(codes[5:]) == {429}
        assert right.status_code == status.HTTP_429_TOO_MANY_REQUESTS
        assert 0 < int(right["Retry-After"]) <= 60
        assert right.json()["code"] == "locked_out"

    def test_unlocked_after_the_cool_off(self, api_client, student):
        for n in range(5):
            self._login(api_client, student.username, f"wrong-{n}")
        _cool_off(lockout.Subject.for_login(user_id=student.pk, identifier="", ip=None))

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
