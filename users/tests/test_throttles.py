"""Throttles: public endpoints per client IP, signed-in principals per identity, probes and validation exempt."""

import pytest
from rest_framework import status

from users.api.throttles import PrincipalThrottle

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):
    """Lower the throttle rates for one test: the per-IP scopes are read from settings at each request, the
    per-principal ceiling by DRF once, at import."""
    original = PrincipalThrottle.THROTTLE_RATES

    def set_rates(**overrides):
        merged = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **overrides}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": merged}
        PrincipalThrottle.THROTTLE_RATES = merged

    yield set_rates
    PrincipalThrottle.THROTTLE_RATES = original


def test_register_is_throttled_per_ip(api_client, rates):
    rates(register="2/hour")
    bodies = [
        {"username": f"u{n}", "email": f"u{n}@school.test", "password": "Quiet-river-stones-2024"} for n in range(3)
    ]

    responses = [api_client.post(f"{API}/register/", body, format="json") for body in bodies]
    other_ip = api_client.post(
        f"{API}/register/",
        {"username": "u9", "email": "u9@school.test", "password": "Quiet-river-stones-2024"},
        format="json",
        REMOTE_ADDR="10.1.1.1",
    )

    assert [r.status_code for r in responses] == [201, 201, 429]
    assert int(responses[-1]["Retry-After"]) > 0
    assert other_ip.status_code == status.HTTP_201_CREATED


def test_login_is_throttled_per_ip(api_client, rates):
    rates(login="3/min")

    codes = [
        api_client.post(f"{API}/login/", {"username": f"x{n}", "password": "y"}, format="json").status_code
        for n in range(4)
    ]

    assert codes == [401, 401, 401, 429]


def test_signed_in_principal_is_throttled_per_identity(client_for, student, staff, rates):
    rates(principal="3/day")  # a fixed window: a day makes a boundary inside the test practically impossible
    mine, theirs = client_for(student), client_for(staff)

    codes = [mine.get(f"{API}/profile/").status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    assert theirs.get(f"{API}/profile/").status_code == status.HTTP_200_OK


def test_validate_token_health_and_jwks_are_not_throttled(client_for, student, api_client, rates):
    rates(principal="1/min", login="1/min", register="1/min", refresh="1/min")
    client = client_for(student)

    for _ in range(5):
        assert client.get(f"{API}/validate-token/").status_code == status.HTTP_200_OK
        assert api_client.get(f"{API}/health/live/").status_code == status.HTTP_200_OK
        assert api_client.get(f"{API}/.well-known/jwks.json").status_code == status.HTTP_200_OK


class TestWindowCounter:
    """The per-principal counter: one pipelined round trip on Redis, and no failure when Redis is gone."""

    def test_counts_per_key_and_expires_with_its_window(self):
        from django.core.cache import cache

        from users.cache import counter_incr

        counted = [counter_incr("throttle-test:a", timeout=30) for _ in range(3)]
        assert [count for count, _ in counted] == [1, 2, 3]
        assert all(0 < seconds_left <= 30 for _, seconds_left in counted)
        assert counter_incr("throttle-test:b", timeout=30)[0] == 1
        redis_key = cache.client.make_key("throttle-test:a")
        assert 0 < cache.client.get_client(write=True).ttl(redis_key) <= 30
        assert cache.get("throttle-test:a") == 3  # a plain integer, readable through the cache API

    def test_a_counter_never_outlives_its_window(self):
        """A counter whose window ended between two commands is started again with a lifetime, never without."""
        from django.core.cache import cache

        from users.cache import counter_incr

        raw = cache.client.get_client(write=True)
        redis_key = cache.client.make_key("throttle-test:race")
        raw.set(redis_key, 7)  # what INCR leaves when the key expired just before it: a count without a lifetime

        count, seconds_left = counter_incr("throttle-test:race", timeout=30)

        assert count == 8
        assert 0 < raw.ttl(redis_key) <= 30
        assert 0 < seconds_left <= 30
        raw.delete(redis_key)
        assert counter_incr("throttle-test:race", timeout=30)[0] == 1
        assert 0 < raw.ttl(redis_key) <= 30

    def test_a_busy_principal_is_counted_in_batches_and_still_stopped(self, rates):
        """At 1,000/min a process adds to the shared count every 10 requests; the ceiling holds within that."""
        from types import SimpleNamespace

        from django.core.cache import cache

        from users.api import throttles

        rates(principal="1000/min")
        request = SimpleNamespace(user=SimpleNamespace(is_service=True, client_id="batch-test"))
        shared = cache.client.get_client(write=True)
        redis_key = cache.client.make_key(
            PrincipalThrottle.cache_format % {"scope": "principal", "ident": "service:batch-test"}
        )
        round_trips = []
        real_incr = throttles.cache.counter_incr

        def counting(*args, **kwargs):
            round_trips.append(kwargs.get("amount", 1))
            return real_incr(*args, **kwargs)

        throttles.cache.counter_incr = counting
        try:
            allowed = [PrincipalThrottle().allow_request(request, None) for _ in range(1_050)]
        finally:
            throttles.cache.counter_incr = real_incr

        assert 1_000 <= allowed.count(True) <= 1_010
        assert allowed[-20:] == [False] * 20  # refused once over, and stays so
        assert len(round_trips) <= 1_050 // 10 + 2  # one round trip per batch, not per request
        assert int(shared.get(redis_key)) == sum(round_trips) >= allowed.count(True) - 10

    def test_redis_unreachable_answers_none_and_requests_pass(self, request, client_for, student, rates):
        from users.cache import counter_incr

        client = client_for(student)
        rates(principal="1/min")
        request.getfixturevalue("cache_unreachable")  # after the login above, which needed the cache

        assert counter_incr("throttle-test:c", timeout=30) is None
        for _ in range(3):  # over the 1/min rate, but the limiter cannot count: it lets them through
            assert client.get(f"{API}/sessions/").status_code == status.HTTP_200_OK


@pytest.mark.django_db(databases=[])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("THROTTLE_LOGIN_RATE", "sixty/min"),
        ("THROTTLE_SERVICE_TOKEN_RATE", "60/fortnight"),
        ("THROTTLE_PASSWORD_RESET_RATE", "60/"),
        ("THROTTLE_REGISTER_RATE", "60"),
    ],
)
def test_a_malformed_rate_stops_start_up_naming_the_variable(name, value):
    """At request time it would fail every call of its scope with a 500."""
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import user_service.settings"],
        env={**os.environ, name: value},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


@pytest.mark.django_db(databases=[])
def test_every_rate_form_the_settings_accept_is_one_the_counters_read():
    import os
    import subprocess
    import sys

    env = {**os.environ, "THROTTLE_LOGIN_RATE": "5/second", "THROTTLE_REFRESH_RATE": "7/hour"}
    code = (
        "import django; django.setup(); from django.conf import settings; from users.services import throttle; "
        "rates = settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']; "
        "print(rates['login'], throttle.PERIODS[rates['login'].partition('/')[2][0]], rates['refresh'])"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["5/second", "1", "7/hour"]
