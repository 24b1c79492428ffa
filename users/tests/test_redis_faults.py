"""Redis faults against a real redis-server of the test's own: hung (SIGSTOP), killed, flushed, restarted empty.

Revocation is a promise (DESIGN §5): a 2xx end of a session is honoured whatever Redis did afterwards, and
when Redis cannot take the end the answer is 503 with nothing changed. Reads stay within bounded time
while Redis is hung (DESIGN §7), thanks to short timeouts and the per-process circuit breaker.
"""

import logging
import statistics
import time
from collections.abc import Callable

import pytest
import redis
from django.core.cache import cache as django_cache
from rest_framework import status
from rest_framework.test import APIClient

from conftest import TEST_PASSWORD
from user_service.celery import app as celery_app
from users.cache import breakers_reset
from users.exceptions import RevocationUnavailable
from users.models import CustomUser, OutboxMessage, UserSession
from users.services.auth import user_logout
from users.services.outbox import outbox_dispatch_reset

API = "/api/v1/users"
pytestmark = [pytest.mark.django_db, pytest.mark.slow]
logger = logging.getLogger(__name__)


@pytest.fixture
def faulty(cache_on_redis_process):
    """The cache on a redis-server this test may pause, kill and restart."""
    return cache_on_redis_process


@pytest.fixture
def broker_on_faulty(faulty):
    """After-commit task publishing through the same faulty Redis (the broker is Redis too)."""
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = faulty.url
    outbox_dispatch_reset()
    yield
    celery_app.conf.broker_url = saved
    outbox_dispatch_reset()


def raw(server) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=2)


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def accepted(token: str) -> bool:
    """Whether this service accepts the access token: validate-token and an authenticated endpoint agree."""
    client = bearer(token)
    validate, profile = client.get(f"{API}/validate-token/"), client.get(f"{API}/profile/")
    assert validate.status_code in (200, 401), validate.content
    assert profile.status_code in (200, 401), profile.content
    assert (validate.status_code == 200) == (profile.status_code == 200), "validate-token and profile disagree"
    return validate.status_code == status.HTTP_200_OK


def back_from_outage(server) -> None:
    """Redis is healthy again and the breaker has let calls through (as it does after REDIS_BREAKER_SECONDS)."""
    server.resume()
    breakers_reset()


def assert_503_nothing_promised(response) -> None:
    assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE, response.content
    assert response.json()["code"] == "revocation_unavailable"
    assert int(response["Retry-After"]) >= 1


# --- The revocation promise through faults -------------------------------------------------------


class TestLogout:
    def test_hung_redis_answers_503_and_the_token_stays_valid_consistently(self, faulty, client_for, student):
        client = client_for(student)
        token = client.tokens["access_token"]
        assert accepted(token)  # the cache now says "alive" for this session
        faulty.pause()

        response = client.post(f"{API}/logout/", {}, format="json")

        assert_503_nothing_promised(response)
        back_from_outage(faulty)
        assert [accepted(token) for _ in range(3)] == [True, True, True]
        assert UserSession.objects.filter(user=student, ended_at__isnull=True).count() == 1

    def test_marker_written_into_a_hung_redis_lands_later_and_answers_stay_consistent(self, faulty, login, student):
        """The end's first write reaches a stopped Redis and times out; Redis executes it when it resumes."""
        tokens = login(student)
        assert accepted(tokens["access_token"])
        session = UserSession.objects.get(user=student)
        faulty.pause()

        with pytest.raises(RevocationUnavailable):
            user_logout(user=student, session_id=str(session.pk))

        back_from_outage(faulty)
        session_key = django_cache.make_key(f"session:{session.pk}")
        assert raw(faulty).get(session_key) == b"-1"  # "ask the database", not "ended"
        session.refresh_from_db()
        assert session.ended_at is None
        assert [accepted(tokens["access_token"]) for _ in range(3)] == [True, True, True]

    def test_2xx_then_flush_or_restart_empty_keeps_the_token_refused(
        self, faulty, client_for, student, django_capture_on_commit_callbacks
    ):
        client = client_for(student)
        token = client.tokens["access_token"]
        assert accepted(token)

        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"{API}/logout/", {}, format="json")

        assert response.status_code == status.HTTP_204_NO_CONTENT
        assert not accepted(token)
        raw(faulty).flushall()
        assert not accepted(token)
        faulty.restart_empty()
        breakers_reset()  # the restart broke this process's pooled connections
        assert not accepted(token)

    def test_redis_down_answers_503_and_nothing_changes_when_it_returns(self, faulty, client_for, student):
        client = client_for(student)
        token = client.tokens["access_token"]
        faulty.kill()

        response = client.post(f"{API}/logout/", {}, format="json")

        assert_503_nothing_promised(response)
        faulty.start()
        breakers_reset()
        assert accepted(token)
        assert UserSession.objects.filter(user=student, ended_at__isnull=True).count() == 1


class TestOtherWaysToEndSessions:
    """Password change, session revoke and deactivation end sessions through the same path as logout."""

    @staticmethod
    def change_password(client: APIClient, victim_token: str, user: CustomUser, hod_client: APIClient):
        body = {"old_password": TEST_PASSWORD, "new_password": "Another-long-passphrase-77", "confirm_password": ""}
        body["confirm_password"] = body["new_password"]
        return client.post(f"{API}/change-password/", body, format="json")

    @staticmethod
    def revoke_session(client: APIClient, victim_token: str, user: CustomUser, hod_client: APIClient):
        sid = UserSession.objects.filter(user=user).order_by("created_at").values_list("pk", flat=True)[0]
        return client.delete(f"{API}/sessions/{sid}/")

    @staticmethod
    def deactivate(client: APIClient, victim_token: str, user: CustomUser, hod_client: APIClient):
        return hod_client.delete(f"{API}/students/{user.student_profile.pk}/")

    @pytest.mark.parametrize("action", ["change_password", "revoke_session", "deactivate"])
    def test_503_while_hung_then_2xx_is_kept_through_a_flush_and_an_empty_restart(
        self, action, faulty, client_for, student, hod, django_capture_on_commit_callbacks
    ):
        end: Callable = getattr(self, action)
        victim = client_for(student)  # the session whose tokens must end (the oldest one)
        actor = client_for(student)  # the session that asks (kept by a password change)
        hod_client = client_for(hod)
        victim_token = victim.tokens["access_token"]
        assert accepted(victim_token)
        faulty.pause()

        refused = end(actor, victim_token, student, hod_client)

        assert_503_nothing_promised(refused)
        back_from_outage(faulty)
        assert accepted(victim_token)
        student.refresh_from_db()
        assert student.is_active
        assert student.check_password(TEST_PASSWORD)

        with django_capture_on_commit_callbacks(execute=True):
            done = end(actor, victim_token, student, hod_client)

        assert status.is_success(done.status_code), done.content
        assert not accepted(victim_token)
        raw(faulty).flushall()
        assert not accepted(victim_token)
        faulty.restart_empty()
        breakers_reset()
        assert not accepted(victim_token)


# --- Bounded latency while Redis is hung ------------------------------------------------------------


def timed(call: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


REQUESTS_PER_ENDPOINT = 30


def test_with_redis_hung_login_register_and_reads_answer_in_bounded_time(
    faulty, broker_on_faulty, make_user, client_for, django_capture_on_commit_callbacks, record_property, settings
):
    """Login, register (with its e-mail dispatched after commit), profile and validate-token, Redis stopped.

    A short breaker period, so that probes of the hung Redis (one request each) happen during the run.
    """
    settings.REDIS_BREAKER_SECONDS = 1.0
    user = make_user(user_type=3, username="hung-reader", email="hung-reader@school.test")
    reader = client_for(user)
    token = reader.tokens["access_token"]
    anonymous = APIClient()
    faulty.pause()
    calls = {
        "login": lambda n: anonymous.post(
            f"{API}/login/", {"username": user.username, "password": TEST_PASSWORD}, format="json"
        ),
        "register": lambda n: anonymous.post(
            f"{API}/register/",
            {"username": f"hung{n}", "email": f"hung{n}@school.test", "password": "Quiet-river-stones-2024"},
            format="json",
        ),
        "profile": lambda n: reader.get(f"{API}/profile/"),
        "validate-token": lambda n: bearer(token).get(f"{API}/validate-token/"),
    }
    expected = {"login": 200, "register": 201, "profile": 200, "validate-token": 200}
    durations: dict[str, list[float]] = {}

    for name, call in calls.items():
        durations[name] = []
        for n in range(REQUESTS_PER_ENDPOINT):
            with django_capture_on_commit_callbacks(execute=True):
                seconds, response = timed(lambda call=call, n=n: call(n))
            assert response.status_code == expected[name], (name, response.content)
            durations[name].append(seconds)

    figures = {
        name: (round(max(d), 3), round(p99(d), 3), round(statistics.median(d), 3)) for name, d in durations.items()
    }
    record_property("max_p99_p50_seconds", figures)
    logger.warning("Redis hung, seconds per request (max, p99, p50): %s", figures)
    for name, samples in durations.items():
        assert max(samples) < 2.0, (name, figures[name])
        assert p99(samples) < 1.0, (name, figures[name])
    # the e-mails of the registrations wait in the outbox for the relay
    assert OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).count() >= REQUESTS_PER_ENDPOINT


def test_with_only_the_broker_hung_register_answers_in_bounded_time(redis_process, django_capture_on_commit_callbacks):
    """A broker on its own Redis: the cache is healthy, so only the dispatch's own timeout and pause bound it."""
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = redis_process.url
    outbox_dispatch_reset()
    redis_process.pause()
    client, durations = APIClient(), []
    try:
        for n in range(10):
            body = {"username": f"split{n}", "email": f"split{n}@school.test", "password": "Quiet-river-stones-2024"}
            with django_capture_on_commit_callbacks(execute=True):
                seconds, response = timed(lambda body=body: client.post(f"{API}/register/", body, format="json"))
            assert response.status_code == status.HTTP_201_CREATED
            durations.append(seconds)
    finally:
        celery_app.conf.broker_url = saved
        outbox_dispatch_reset()

    logger.warning("broker hung, register seconds: %s", [round(d, 3) for d in durations])
    assert max(durations) < 1.0, durations  # the first pays the dispatch timeout; the others skip the broker
    assert sorted(durations)[-2] < 0.25, durations
    assert OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).count() >= 10  # waiting for the relay
    assert not OutboxMessage.objects.exclude(status=OutboxMessage.Status.PENDING).exists()


def test_breaker_after_one_timeout_further_requests_do_not_wait_on_redis(faulty, client_for, student, settings):
    settings.REDIS_BREAKER_SECONDS = 1.5
    token = client_for(student).tokens["access_token"]
    faulty.pause()

    first, response = timed(lambda: bearer(token).get(f"{API}/validate-token/"))
    following = [timed(lambda: bearer(token).get(f"{API}/validate-token/"))[0] for _ in range(10)]

    assert response.status_code == status.HTTP_200_OK
    assert first >= settings.REDIS_TIMEOUT_SECONDS  # the one call that found out
    assert max(following) < settings.REDIS_TIMEOUT_SECONDS / 2, following  # none waits on Redis again

    faulty.resume()
    time.sleep(settings.REDIS_BREAKER_SECONDS)
    bearer(token).get(f"{API}/validate-token/")  # the probe gets through: the cache is used again
    session = UserSession.objects.get(user=student)
    assert raw(faulty).get(django_cache.make_key(f"session:{session.pk}")) == str(student.pk).encode()


def test_breaker_lets_one_probe_through_after_the_period_and_closes_on_success(settings):
    import threading

    from users.cache.breaker import Breaker, CircuitOpen

    settings.REDIS_BREAKER_SECONDS = 0.05
    breaker = Breaker("127.0.0.1:1")
    breaker.failed(TimeoutError())
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    time.sleep(0.06)

    breaker.before_call()  # this thread becomes the probe
    breaker.before_call()  # and may go on using its connection
    others: list[BaseException] = []
    thread = threading.Thread(target=lambda: others.append(pytest.raises(CircuitOpen, breaker.before_call).value))
    thread.start()
    thread.join()

    assert isinstance(others[0], CircuitOpen)  # another thread does not pile onto the probe
    breaker.succeeded()
    assert not breaker.is_open
    breaker.before_call()


def test_a_reply_that_came_too_late_never_answers_a_later_read(faulty):
    """The hot reads keep a connection per thread; one that timed out is dropped with whatever Redis sends late."""
    from users.cache import session_state_get, session_state_offer

    session_state_offer("late-a", 1, timeout=60)
    session_state_offer("late-b", 2, timeout=60)
    assert session_state_get("late-a") == 1  # the thread's read connection is open
    faulty.pause()
    assert session_state_get("late-a") is None  # timed out: a miss, and Redis holds the GET to answer later

    back_from_outage(faulty)

    assert [session_state_get("late-b"), session_state_get("late-a")] == [2, 1]


def test_threads_that_come_and_go_and_dropped_connections_never_use_up_the_pool(faulty):
    """The hot path's per-thread connections are not the pool's: a server's thread per client, and a connection
    dropped after each error, would otherwise reach the pool's limit (redis-py's default, 100) and every later
    thread's reads would fail as an outage."""
    import threading

    from users.cache import oidc_code_get, oidc_code_put, session_state_get

    pool = django_cache.client.get_client(write=True).connection_pool  # type: ignore[attr-defined]
    assert oidc_code_put("kept", "the record", timeout=60)
    reads: list[str | None] = []

    def read() -> None:
        reads.append(oidc_code_get("kept"))

    for _ in range(pool.max_connections + 20):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    faulty.kill()
    for _ in range(pool.max_connections + 20):  # each read fails (refused, then the open breaker) and is dropped
        assert session_state_get("dropped") is None
    faulty.restart_empty()
    breakers_reset()

    assert reads == ["the record"] * (pool.max_connections + 20)
    assert oidc_code_put("kept", "the record again", timeout=60)
    assert oidc_code_get("kept") == "the record again"
