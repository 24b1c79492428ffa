"""Health endpoints: readiness with dependency checks, and bare liveness."""

import time

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from users import cache
from users.api.views import PublicAPIView

CheckSerializer = inline_serializer(
    name="HealthCheck",
    fields={
        "status": serializers.ChoiceField(choices=["ok", "down", "skipped"]),
        "latency_ms": serializers.FloatField(required=False),
        "detail": serializers.CharField(required=False),
    },
)
HealthSerializer = inline_serializer(
    name="Health",
    fields={
        "status": serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"]),
        "checks": serializers.DictField(child=CheckSerializer),
    },
)


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # a health check reports any failure
        return {"status": "down", "detail": exc.__class__.__name__}
    result = {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    if detail:
        result.update(detail)
    return result


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    cache.cache_check()


_broker_client = None


def _broker() -> dict | None:
    global _broker_client  # one pooled client per process
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"status": "skipped", "detail": "tasks run eagerly in-process"}
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return {"status": "skipped", "detail": "broker is not Redis"}
    if _broker_client is None:
        _broker_client = cache.redis_client_for(settings.CELERY_BROKER_URL)
    _broker_client.ping()
    return None


class HealthView(PublicAPIView):
    @extend_schema(
        tags=["operations"],
        summary="Readiness: database, cache and broker checks",
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request):
        checks = {"database": _timed(_database), "cache": _timed(_cache), "broker": _timed(_broker)}
        if checks["database"]["status"] == "down":
            overall, code = "unhealthy", status.HTTP_503_SERVICE_UNAVAILABLE
        elif any(check["status"] == "down" for check in checks.values()):
            overall, code = "degraded", status.HTTP_200_OK
        else:
            overall, code = "healthy", status.HTTP_200_OK
        return Response({"status": overall, "checks": checks}, status=code)


class LivenessView(PublicAPIView):
    @extend_schema(
        tags=["operations"],
        summary="Liveness: the process answers; no dependency is checked",
        responses={200: inline_serializer(name="Liveness", fields={"status": serializers.CharField()})},
    )
    def get(self, request):
        return Response({"status": "alive"})
