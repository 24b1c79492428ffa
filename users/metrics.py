"""Prometheus metrics of the service; ``/metrics`` exposes them (multi-process aware under gunicorn)."""

import hmac
import os
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from users.http import address_in_networks
from users.models import OutboxMessage

REQUESTS = Counter("ums_http_requests_total", "HTTP requests.", ["view", "method", "status"])
LATENCY = Histogram(
    "ums_http_request_duration_seconds",
    "HTTP request latency.",
    ["view"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LOGINS = Counter("ums_logins_total", "Login attempts by outcome.", ["outcome"])
LOCKOUTS = Counter("ums_lockouts_total", "Login lockouts started.", ["kind"])
TOKENS_ISSUED = Counter("ums_tokens_issued_total", "Tokens issued.", ["type"])
TOKENS_VALIDATED = Counter("ums_tokens_validated_total", "validate-token answers.", ["outcome"])
TASKS = Counter("ums_celery_tasks_total", "Celery task outcomes.", ["task", "outcome"])
LEGACY_ANONYMOUS_CALLS = Counter(
    "ums_legacy_anonymous_calls_total",
    "Anonymous calls served from LEGACY_INTERNAL_NETWORKS (callers still to move to service tokens).",
    ["endpoint"],
)


_REQUEST_SERIES_KEPT = 1000
_request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def request_observe(*, view: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency; the labelled series are looked up once per process."""
    key = (view, method, status)
    series = _request_series.get(key)
    if series is None:
        series = REQUESTS.labels(view, method, str(status)), LATENCY.labels(view)
        if len(_request_series) < _REQUEST_SERIES_KEPT:  # methods are the client's to choose: a bounded memo
            _request_series[key] = series
    series[0].inc()
    series[1].observe(seconds)


class OutboxCollector:
    """Outbox backlog read from the database at scrape time (the truth, whichever process wrote it)."""

    def collect(self):
        gauge = GaugeMetricFamily("ums_outbox_messages", "Outbox messages by status.", labels=["status"])
        counts = dict(
            OutboxMessage.objects.exclude(status=OutboxMessage.Status.SENT)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for status in (OutboxMessage.Status.PENDING, OutboxMessage.Status.FAILED):
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge


def _process_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # the samples of every gunicorn and Celery worker process
        return generate_latest(registry)
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY)


_outbox_registry = CollectorRegistry()
_outbox_registry.register(OutboxCollector())


def _allowed(request) -> bool:
    """The scraper's own address (REMOTE_ADDR: a scrape comes straight to the pod, never via X-Forwarded-For)."""
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    return address_in_networks(request.META.get("REMOTE_ADDR"), settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request):
    """Prometheus exposition; only with ``METRICS_TOKEN`` as bearer or from ``METRICS_ALLOWED_NETWORKS``."""
    if not _allowed(request):
        return HttpResponse(status=404)  # do not advertise the endpoint
    body = _process_metrics() + generate_latest(_outbox_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def worker_metrics_serve(*, port: int) -> None:
    """Serve this process's (and, in multi-process mode, its pool children's) metrics on ``port``."""
    from prometheus_client import start_http_server

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        start_http_server(port, registry=registry)
    else:
        start_http_server(port)
