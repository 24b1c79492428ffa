"""Shared pytest fixtures: API clients, users of each role, logged-in clients, real Redis checks."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from users.models import ServiceAccount, UserType
from users.people_schema import PUBLIC_USER_FIELDS

TEST_PASSWORD = "a-Long-test-passphrase-42"


class SignedInClient(APIClient):
    """An APIClient holding the login response it signs in with (``client.tokens``)."""

    tokens: dict[str, Any]


# The user JSON every endpoint shares (DESIGN §6), as tests assert it.
USER_KEYS = frozenset(PUBLIC_USER_FIELDS)


def pytest_sessionstart(session):
    """Refuse to run against a missing Redis: the suite must exercise it, never silently skip it."""
    if settings.REDIS_URL:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            pytest.exit(f"Redis at {settings.REDIS_URL} is unreachable: {exc}", returncode=3)


def _clear_cache() -> None:
    from users.api.throttles import local_counts_forget

    local_counts_forget()  # the principal throttle's batched counts go with the shared ones
    # Only this run's keys (CACHE_KEY_PREFIX is unique per `make test`): other runs may share the Redis.
    delete_pattern = getattr(cache, "delete_pattern", None)
    if delete_pattern is not None:
        delete_pattern("*")
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The suite logs HODs in with a password alone everywhere; with the default (MFA required for HODs) each of
    # those logins would stop at "mfa_enrolment_required". The policy, its default included, is tested on its own
    # (users/tests/test_mfa_login.py), where tests set MFA_REQUIRED_ROLES themselves.
    settings.MFA_REQUIRED_ROLES = frozenset()
    # The hashed-name manifest comes from collectstatic at deploy time (image build, make run), not in a clone.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    _clear_cache()
    yield
    _clear_cache()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_user(db):
    from users.tests.factories import UserFactory

    return UserFactory


@pytest.fixture
def hod(make_user):
    return make_user(user_type=UserType.HOD, username="hod", email="hod@school.test")


@pytest.fixture
def staff(make_user):
    return make_user(user_type=UserType.STAFF, username="staff", email="staff@school.test")


@pytest.fixture
def student(make_user):
    return make_user(user_type=UserType.STUDENT, username="student", email="student@school.test")


@pytest.fixture
def login(api_client):
    """Log a user in through the API; returns the token response body."""

    def do_login(user, password: str = TEST_PASSWORD, client: APIClient | None = None) -> dict:
        response = (client or APIClient()).post(
            "/api/v1/users/login/", {"username": user.username, "password": password}, format="json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    return do_login


@pytest.fixture
def client_for(login):
    """An APIClient carrying a fresh access token of ``user`` (a new session per call)."""

    def make(user) -> SignedInClient:
        tokens = login(user)
        client = SignedInClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
        client.tokens = tokens
        return client

    return make


class ServiceAccountClient(APIClient):
    """An APIClient authenticated as a service account (``client.account``)."""

    account: ServiceAccount


@pytest.fixture
def service_client(db):
    """An APIClient authenticated as a new service account with the given scopes (``client.account``)."""
    from users.services.service_accounts import service_account_create

    def make(*scopes: str, name: str = "attendance") -> ServiceAccountClient:
        account, secret = service_account_create(name=name, scopes=list(scopes))
        response = APIClient().post(
            "/api/v1/users/service-token/", {"client_id": account.client_id, "client_secret": secret}, format="json"
        )
        assert response.status_code == 200, response.content
        client = ServiceAccountClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
        client.account = account
        return client

    return make


@pytest.fixture
def cache_unreachable(settings):
    """Point the cache at a closed port for one test, as a Redis outage would."""
    unreachable = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    unreachable["OPTIONS"] = {**unreachable.get("OPTIONS", {}), "SOCKET_CONNECT_TIMEOUT": 0.2}
    settings.CACHES = {"default": unreachable}


@pytest.fixture
def cache_restart_empty():
    """A callable that empties this run's cache keys, as a Redis restart without persistence would."""
    return _clear_cache


@pytest.fixture
def in_parallel():
    """Run ``work(i)`` for each i < n on n threads released together; returns the results in order.

    Each thread has its own database connection (use with ``django_db(transaction=True)``) and closes it.
    """
    from django.db import connections

    def run_all(n: int, work) -> list:
        barrier = threading.Barrier(n)

        def run(i: int):
            barrier.wait()
            try:
                return work(i)
            finally:
                connections.close_all()

        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(run, range(n)))

    return run_all


@pytest.fixture
def slow_password_check(monkeypatch) -> list[int]:
    """Every password verify takes 0.1 s more, so concurrent attempts overlap; returns [most verifies at once]."""
    from users.models import CustomUser

    original = CustomUser.check_password
    running, peak, lock = [0], [0], threading.Lock()

    def check_password(user, raw_password):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.1)
            return original(user, raw_password)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(CustomUser, "check_password", check_password)
    return peak


@pytest.fixture
def redis_process():
    """A redis-server of this test's own (users.tests.servers.RedisProcess), killed afterwards."""
    from users.tests.servers import RedisProcess

    server = RedisProcess()
    yield server
    server.kill()


@pytest.fixture
def cache_on_redis_process(settings, redis_process):
    """The Django cache pointed at ``redis_process`` (the cache connection is rebuilt for it), breakers closed."""
    from users.cache import breakers_reset

    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": redis_process.url}}
    breakers_reset()
    yield redis_process
    redis_process.kill()
    breakers_reset()
