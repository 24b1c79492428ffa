"""Tests of ServiceClient against a real loopback HTTP server: retries, timeouts, breaker, token, logging."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests
from werkzeug import Response

from clients.base import CircuitState
from clients.exceptions import CircuitOpen, ClientNotConfigured, ServiceError, ServiceUnavailable
from clients.tests.conftest import EchoClient
from users import tokens


def _requests_to(server, path: str) -> int:
    return sum(1 for request, _ in server.log if request.path == path)


class TestSuccessAndToken:
    def test_get_returns_the_response_with_a_verifiable_service_token(self, server, make_client, settings):
        # Given a service that records the headers it receives
        seen = []
        server.expect_request("/api/v1/ping/", method="GET").respond_with_handler(
            lambda request: (
                seen.append(dict(request.headers)) or Response('{"pong": true}', 200, mimetype="application/json")
            )
        )
        client = make_client()

        # When the client calls it twice
        first = client.request("GET", "/api/v1/ping/")
        second = client.request("GET", "/api/v1/ping/")

        # Then the answers come back and each call carries the same cached service token as a Bearer
        assert first.status_code == 200
        assert second.json() == {"pong": True}
        assert seen[0]["Accept"] == "application/json"
        scheme, token = seen[0]["Authorization"].split(" ")
        assert scheme == "Bearer"
        assert seen[1]["Authorization"] == seen[0]["Authorization"]
        claims = tokens.decode(token, token_type=tokens.SERVICE)
        assert claims["sub"] == "user-service"
        assert claims["scope"] == ["echo:read"]
        assert claims["iss"] == settings.JWT_ISSUER
        assert claims["exp"] - claims["iat"] == 300
        assert claims["jti"]

    def test_service_client_id_comes_from_settings(self, server, make_client, settings):
        settings.SERVICE_CLIENT_ID = "user-service-staging"
        seen = []
        server.expect_request("/api/v1/ping/").respond_with_handler(
            lambda request: seen.append(request.headers["Authorization"]) or Response("{}", 200)
        )

        make_client().request("GET", "/api/v1/ping/")

        assert tokens.decode(seen[0].split(" ")[1], token_type=tokens.SERVICE)["sub"] == "user-service-staging"


class TestRetries:
    def test_a_503_burst_is_retried_with_exponential_backoff_and_jitter(self, server, make_client, clock):
        # Given a service that answers 503 twice, then 200
        server.expect_oneshot_request("/api/v1/items/").respond_with_data("busy", status=503)
        server.expect_oneshot_request("/api/v1/items/").respond_with_data("busy", status=503)
        server.expect_request("/api/v1/items/").respond_with_json({"ok": True})
        client = make_client(max_retries=2, backoff_seconds=0.2)

        # When a GET is sent
        response = client.request("GET", "/api/v1/items/")

        # Then it succeeds on the third attempt after two growing, jittered waits
        assert response.json() == {"ok": True}
        assert _requests_to(server, "/api/v1/items/") == 3
        assert len(clock.sleeps) == 2
        assert 0.1 <= clock.sleeps[0] <= 0.2
        assert 0.2 <= clock.sleeps[1] <= 0.4

    def test_gateway_errors_after_the_last_retry_raise_service_unavailable(self, server, make_client):
        server.expect_request("/api/v1/items/").respond_with_data("bad gateway", status=502)
        client = make_client(max_retries=2)

        with pytest.raises(ServiceUnavailable) as caught:
            client.request("GET", "/api/v1/items/")

        assert caught.value.status_code == 502
        assert not isinstance(caught.value, CircuitOpen)
        assert _requests_to(server, "/api/v1/items/") == 3

    def test_post_without_idempotency_key_is_sent_once(self, server, make_client, clock):
        server.expect_request("/api/v1/items/", method="POST").respond_with_data("busy", status=503)
        client = make_client(max_retries=2)

        with pytest.raises(ServiceUnavailable):
            client.request("POST", "/api/v1/items/", json={"a": 1})

        assert _requests_to(server, "/api/v1/items/") == 1
        assert clock.sleeps == []

    def test_post_with_idempotency_key_is_retried_with_the_same_key(self, server, make_client):
        keys = []

        def record(status: int):
            return lambda request: keys.append(request.headers.get("Idempotency-Key")) or Response("{}", status)

        server.expect_oneshot_request("/api/v1/items/", method="POST").respond_with_handler(record(503))
        server.expect_request("/api/v1/items/", method="POST").respond_with_handler(record(201))
        client = make_client(max_retries=2)

        response = client.request("POST", "/api/v1/items/", json={"a": 1}, idempotency_key="outbox-17")

        assert response.status_code == 201
        assert keys == ["outbox-17", "outbox-17"]

    @pytest.mark.parametrize("key", ["", "with space", "line\nbreak", "x" * 256])
    def test_malformed_idempotency_keys_are_refused_before_sending(self, server, make_client, key):
        with pytest.raises(ValueError, match="idempotency key"):
            make_client().request("POST", "/api/v1/items/", idempotency_key=key)
        assert len(server.log) == 0

    def test_a_non_retryable_error_carries_status_and_json_body_and_is_not_retried(self, server, make_client):
        server.expect_request("/api/v1/items/").respond_with_json({"detail": "bad filter"}, status=400)
        client = make_client(max_retries=2)

        with pytest.raises(ServiceError) as caught:
            client.request("GET", "/api/v1/items/")

        assert caught.value.status_code == 400
        assert caught.value.body == {"detail": "bad filter"}
        assert _requests_to(server, "/api/v1/items/") == 1

    def test_a_500_is_a_service_error_with_the_text_body(self, server, make_client):
        server.expect_request("/api/v1/items/").respond_with_data("Traceback: boom", status=500)

        with pytest.raises(ServiceError) as caught:
            make_client().request("GET", "/api/v1/items/")

        assert caught.value.status_code == 500
        assert caught.value.body == "Traceback: boom"
        assert _requests_to(server, "/api/v1/items/") == 1

    def test_redirects_are_not_followed(self, server, make_client):
        # Given a service that redirects to another path (which would leak the token if followed)
        server.expect_request("/api/v1/items/").respond_with_data(
            "", status=302, headers={"Location": server.url_for("/elsewhere/")}
        )
        server.expect_request("/elsewhere/").respond_with_json({"followed": True})

        with pytest.raises(ServiceError) as caught:
            make_client().request("GET", "/api/v1/items/")

        assert caught.value.status_code == 302
        assert _requests_to(server, "/elsewhere/") == 0


class TestTransportFailures:
    def test_a_slow_service_times_out_quickly_as_service_unavailable(self, slow_server, clock):
        # Given a service whose handler hangs
        server, release, entered = slow_server
        client = EchoClient(
            server.url_for("/"), read_timeout=0.2, max_retries=1, clock=clock, sleep=clock.sleep, connect_timeout=0.5
        )

        # When a GET is sent
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as caught:
            client.request("GET", "/slow/")
        elapsed = time.monotonic() - started
        client.close()

        # Then both attempts time out after the read timeout, well under a second in total
        assert isinstance(caught.value.__cause__, requests.Timeout)
        assert elapsed < 1.0
        assert entered == ["/slow/", "/slow/"]

    def test_connection_refused_is_service_unavailable_after_retries(self, make_client, refused_url, clock):
        client = make_client(base_url=refused_url, max_retries=2)

        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as caught:
            client.request("GET", "/api/v1/items/")

        assert isinstance(caught.value.__cause__, requests.ConnectionError)
        assert len(clock.sleeps) == 2
        assert time.monotonic() - started < 1.0


class TestCircuitBreaker:
    def test_opens_after_consecutive_failures_and_then_fails_fast(self, server, make_client):
        # Given a failing service and a breaker that opens after 3 failures
        server.expect_request("/api/v1/items/").respond_with_data("down", status=503)
        client = make_client(failure_threshold=3, max_retries=0)

        # When 3 calls fail
        for _ in range(3):
            with pytest.raises(ServiceUnavailable) as caught:
                client.request("GET", "/api/v1/items/")
            assert not isinstance(caught.value, CircuitOpen)

        # Then the circuit is open and further calls fail without reaching the service
        assert client.breaker.state is CircuitState.OPEN
        for _ in range(5):
            with pytest.raises(CircuitOpen):
                client.request("GET", "/api/v1/items/")
        assert _requests_to(server, "/api/v1/items/") == 3

    def test_failed_retries_count_and_opening_stops_the_retries(self, server, make_client, clock):
        server.expect_request("/api/v1/items/").respond_with_data("down", status=503)
        client = make_client(failure_threshold=2, max_retries=5)

        with pytest.raises(ServiceUnavailable) as caught:
            client.request("GET", "/api/v1/items/")

        # The second failed attempt opened the circuit: no third attempt, no wait after it, the real status surfaces
        assert caught.value.status_code == 503
        assert _requests_to(server, "/api/v1/items/") == 2
        assert len(clock.sleeps) == 1

    def test_half_opens_after_the_cool_down_and_closes_on_success(self, server, make_client, clock):
        # Given an open circuit
        server.expect_request("/api/v1/items/").respond_with_data("down", status=503)
        client = make_client(failure_threshold=2, max_retries=0, reset_seconds=30)
        for _ in range(2):
            with pytest.raises(ServiceUnavailable):
                client.request("GET", "/api/v1/items/")
        server.clear_all_handlers()
        server.expect_request("/api/v1/items/").respond_with_json({"ok": True})

        # When less than the cool-down has passed, calls still fail fast
        clock.advance(29)
        with pytest.raises(CircuitOpen):
            client.request("GET", "/api/v1/items/")
        assert _requests_to(server, "/api/v1/items/") == 2

        # When the cool-down has passed, one trial call goes through, succeeds and closes the circuit
        clock.advance(1)
        assert client.breaker.state is CircuitState.HALF_OPEN
        assert client.request("GET", "/api/v1/items/").json() == {"ok": True}
        assert client.breaker.state is CircuitState.CLOSED
        assert client.request("GET", "/api/v1/items/").status_code == 200
        assert _requests_to(server, "/api/v1/items/") == 4

    def test_a_failed_trial_opens_the_circuit_again(self, server, make_client, clock):
        server.expect_request("/api/v1/items/").respond_with_data("down", status=503)
        client = make_client(failure_threshold=2, max_retries=2, reset_seconds=30)
        for _ in range(2):
            with pytest.raises(ServiceUnavailable):
                client.request("GET", "/api/v1/items/")
        sent = _requests_to(server, "/api/v1/items/")

        clock.advance(31)  # past the cool-down (the backoff sleep moved the clock by a jittered amount)
        with pytest.raises(ServiceUnavailable) as caught:
            client.request("GET", "/api/v1/items/")

        # One trial request only (its retries are not sent into an open circuit), and the circuit is open again
        assert caught.value.status_code == 503
        assert _requests_to(server, "/api/v1/items/") == sent + 1
        assert client.breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpen):
            client.request("GET", "/api/v1/items/")

    def test_client_errors_do_not_count_as_failures(self, server, make_client):
        server.expect_oneshot_request("/api/v1/items/").respond_with_data("down", status=503)
        server.expect_oneshot_request("/api/v1/items/").respond_with_json({"detail": "nope"}, status=404)
        server.expect_request("/api/v1/items/").respond_with_data("down", status=503)
        client = make_client(failure_threshold=2, max_retries=0)

        with pytest.raises(ServiceUnavailable):
            client.request("GET", "/api/v1/items/")
        assert client.request("GET", "/api/v1/items/", allow_statuses={404}).status_code == 404
        with pytest.raises(ServiceUnavailable):
            client.request("GET", "/api/v1/items/")

        assert client.breaker.state is CircuitState.CLOSED

    def test_connection_failures_open_the_circuit(self, make_client, refused_url):
        client = make_client(base_url=refused_url, failure_threshold=3, max_retries=2)

        with pytest.raises(ServiceUnavailable):
            client.request("GET", "/api/v1/items/")
        with pytest.raises(CircuitOpen):
            client.request("GET", "/api/v1/items/")

    def test_while_the_trial_call_is_in_flight_other_calls_fail_fast(self, slow_server, clock):
        # Given an open circuit whose cool-down has passed, in front of a service that answers slowly
        server, release, entered = slow_server
        client = EchoClient(server.url_for("/"), failure_threshold=1, reset_seconds=30, read_timeout=5, clock=clock)
        client.breaker.record_failure()
        clock.advance(30)
        outcome = []
        trial = threading.Thread(target=lambda: outcome.append(client.request("GET", "/slow/").status_code))

        # When the trial call is under way, another caller is refused without a request
        trial.start()
        deadline = time.monotonic() + 5
        while not entered and time.monotonic() < deadline:
            time.sleep(0.005)
        with pytest.raises(CircuitOpen):
            client.request("GET", "/slow/")
        assert entered == ["/slow/"]

        # Then the trial's success closes the circuit
        release.set()
        trial.join(5)
        client.close()
        assert outcome == [200]
        assert client.breaker.state is CircuitState.CLOSED


class TestConfigurationAndSafety:
    def test_a_missing_base_url_setting_names_the_variable(self, settings):
        from clients.academic import AcademicServiceClient

        settings.ACADEMIC_SERVICE_URL = ""
        with pytest.raises(ClientNotConfigured, match="ACADEMIC_SERVICE_URL"):
            AcademicServiceClient()

    @pytest.mark.parametrize("base_url", ["ftp://academic", "academic:8000", "http://academic/?x=1"])
    def test_a_base_url_that_is_not_http_is_refused(self, base_url):
        with pytest.raises(ClientNotConfigured):
            EchoClient(base_url)

    @pytest.mark.parametrize("path", ["api/v1/items/", "//evil.example/steal", "/redirect?to=http://evil.example"])
    def test_paths_that_could_leave_the_base_url_are_refused(self, server, make_client, path):
        with pytest.raises(ValueError, match="relative"):
            make_client().request("GET", path)
        assert len(server.log) == 0

    def test_timeouts_and_retries_come_from_settings(self, settings, server):
        settings.SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS = 0.7
        settings.SERVICE_HTTP_READ_TIMEOUT_SECONDS = 2.5
        settings.SERVICE_HTTP_MAX_RETRIES = 4
        settings.SERVICE_CIRCUIT_FAILURE_THRESHOLD = 9

        with EchoClient(server.url_for("/")) as client:
            assert client.timeout == (0.7, 2.5)
            assert client.max_retries == 4
            assert client.breaker.failure_threshold == 9

    def test_shared_returns_one_instance_per_class(self, settings, server):
        from clients.academic import AcademicServiceClient
        from clients.attendance import AttendanceServiceClient

        settings.ACADEMIC_SERVICE_URL = server.url_for("/")
        settings.ATTENDANCE_SERVICE_URL = server.url_for("/")
        try:
            assert AcademicServiceClient.shared() is AcademicServiceClient.shared()
            assert isinstance(AttendanceServiceClient.shared(), AttendanceServiceClient)
        finally:
            AcademicServiceClient.reset_shared()


class TestLogging:
    def test_each_attempt_is_logged_with_structured_fields_and_never_the_token(self, server, make_client, caplog):
        # Given a service that fails once, then answers, and records the token it was sent
        seen = []
        server.expect_oneshot_request("/api/v1/items/").respond_with_data("busy", status=503)
        server.expect_request("/api/v1/items/").respond_with_handler(
            lambda request: seen.append(request.headers["Authorization"]) or Response("{}", 200)
        )
        caplog.set_level(logging.INFO, logger="clients")

        make_client().request("GET", "/api/v1/items/", params={"q": "x"})

        calls = [record for record in caplog.records if record.getMessage() == "service call"]
        assert [(r.service, r.method, r.path, r.status, r.attempt) for r in calls] == [
            ("echo", "GET", "/api/v1/items/", 503, 1),
            ("echo", "GET", "/api/v1/items/", 200, 2),
        ]
        assert [r.levelno for r in calls] == [logging.WARNING, logging.INFO]
        assert all(isinstance(r.duration_ms, float) for r in calls)
        token = seen[0].split(" ")[1]
        for record in caplog.records:
            dumped = repr(record.__dict__)
            assert token not in dumped
            assert "Bearer" not in dumped
            assert "Authorization" not in dumped
