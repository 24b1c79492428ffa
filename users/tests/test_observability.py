"""Request ids, structured logs without secrets, and the protected Prometheus endpoint."""

import ipaddress
import json
import logging
import sys

import pytest
from rest_framework import status

from conftest import TEST_PASSWORD
from user_service.logging import JsonFormatter

API = "/api/v1/users"
pytestmark = pytest.mark.django_db


class TestRequestId:
    def test_generated_when_absent(self, api_client):
        response = api_client.get(f"{API}/health/live/")

        assert len(response["X-Request-ID"]) == 32

    def test_accepted_when_sane(self, api_client):
        response = api_client.get(f"{API}/health/live/", HTTP_X_REQUEST_ID="abc-123.DEF_9")

        assert response["X-Request-ID"] == "abc-123.DEF_9"

    @pytest.mark.parametrize("incoming", ["a b", "x" * 200, "<script>", "é"])
    def test_replaced_when_not(self, api_client, incoming):
        response = api_client.get(f"{API}/health/live/", HTTP_X_REQUEST_ID=incoming)

        assert response["X-Request-ID"] != incoming
        assert len(response["X-Request-ID"]) == 32


class TestLogs:
    def test_one_json_line_per_request_with_the_fields(self, client_for, student, caplog):
        client = client_for(student)
        caplog.set_level(logging.INFO, logger="user_service.request")
        caplog.clear()  # the login above was a request too

        client.get(f"{API}/profile/", HTTP_X_REQUEST_ID="req-42")

        records = [r for r in caplog.records if r.name == "user_service.request"]
        assert len(records) == 1
        line = json.loads(JsonFormatter().format(records[0]))
        assert line["request_id"] == "req-42"
        assert line["user_id"] == student.pk
        assert line["status"] == 200
        assert line["view"] == "users:profile"
        assert line["method"] == "GET"
        assert line["duration_ms"] >= 0
        assert line["level"] == "INFO"

    def test_no_secret_reaches_any_log(self, api_client, student, caplog):
        caplog.set_level(logging.DEBUG)

        login = api_client.post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )
        tokens = login.json()
        api_client.post(
            f"{API}/login/", {"username": student.username, "password": "Wrong-but-secret-1"}, format="json"
        )
        api_client.get(f"{API}/profile/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
        api_client.post(f"{API}/token/refresh/", {"refresh_token": tokens["refresh_token"]}, format="json")
        api_client.get(f"{API}/profile/", HTTP_AUTHORIZATION="Bearer forged.token.value")

        formatter = JsonFormatter()
        text = "\n".join(formatter.format(r) for r in caplog.records)
        assert "user_service.request" in text  # the request lines were captured
        for secret in (TEST_PASSWORD, "Wrong-but-secret-1", tokens["access_token"], tokens["refresh_token"],
                       "forged.token.value", "Bearer"):  # fmt: skip
            assert secret not in text

    def test_json_formatter_keeps_exceptions(self):
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())

        line = json.loads(JsonFormatter().format(record))

        assert "ValueError: boom" in line["exception"]


class TestMetrics:
    def test_hidden_from_networks_not_allowed_and_without_token(self, client, settings):
        settings.METRICS_ALLOWED_NETWORKS = []
        settings.METRICS_TOKEN = "scrape-secret"

        assert client.get("/metrics").status_code == status.HTTP_404_NOT_FOUND
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == status.HTTP_404_NOT_FOUND
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == status.HTTP_200_OK

    def test_allowed_networks_are_read_from_the_peer_address_not_x_forwarded_for(self, client, settings):
        settings.METRICS_ALLOWED_NETWORKS = (ipaddress.ip_network("10.0.0.0/8"),)
        settings.METRICS_TOKEN = ""

        assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == status.HTTP_200_OK
        assert client.get("/metrics", REMOTE_ADDR="::ffff:10.1.2.3").status_code == status.HTTP_200_OK
        outside = client.get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.1.2.3")
        assert outside.status_code == status.HTTP_404_NOT_FOUND

    def test_no_token_configured_means_no_token_access(self, client, settings):
        settings.METRICS_ALLOWED_NETWORKS = []
        settings.METRICS_TOKEN = ""

        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == status.HTTP_404_NOT_FOUND

    def test_exposes_the_series_after_real_requests(self, api_client, client, login, student):
        tokens = login(student)
        api_client.post(f"{API}/login/", {"username": student.username, "password": "nope"}, format="json")
        api_client.get(f"{API}/validate-token/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
        api_client.get(f"{API}/validate-token/")

        body = client.get("/metrics").content.decode()  # the test client comes from 127.0.0.1: allowed

        for series in (
            'ums_http_requests_total{method="POST",status="200",view="users:login"}',
            "ums_http_request_duration_seconds_bucket",
            'ums_logins_total{outcome="succeeded"}',
            'ums_logins_total{outcome="failed"}',
            'ums_tokens_issued_total{type="access"}',
            'ums_tokens_validated_total{outcome="valid"}',
            'ums_tokens_validated_total{outcome="not_authenticated"}',
            'ums_outbox_messages{status="pending"}',
            'ums_outbox_messages{status="failed"}',
        ):
            assert series in body, series


def test_worker_metrics_are_served_on_their_port():
    import requests

    from users import metrics
    from users.tests.servers import closed_port

    port = closed_port()
    metrics.TASKS.labels(task="users.tasks.example", outcome="success").inc()

    metrics.worker_metrics_serve(port=port)

    body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'ums_celery_tasks_total{outcome="success",task="users.tasks.example"}' in body
