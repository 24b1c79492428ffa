"""Settings of the clients package: its defaults in one table, overridden by Django settings of the same name.

This package also runs inside sibling services, whose settings do not define these names, so the defaults live
here (the pattern of SimpleJWT's ``api_settings``), not in the user service's settings. The user service reads
the outgoing-call settings from its environment with these same defaults (``user_service/settings.py``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Outgoing calls to sibling services (clients/base.py); the base URL settings (ACADEMIC_SERVICE_URL, ...).
    "SERVICE_HTTP_CONNECT_TIMEOUT_SECONDS": 1.0,
    "SERVICE_HTTP_READ_TIMEOUT_SECONDS": 3.0,
    "SERVICE_HTTP_MAX_RETRIES": 2,
    "SERVICE_HTTP_BACKOFF_SECONDS": 0.2,
    "SERVICE_HTTP_BACKOFF_MAX_SECONDS": 2.0,
    "SERVICE_HTTP_POOL_MAXSIZE": 10,
    "SERVICE_CIRCUIT_FAILURE_THRESHOLD": 5,
    "SERVICE_CIRCUIT_RESET_SECONDS": 30.0,
    "ACADEMIC_SERVICE_URL": "",
    "NOTIFICATION_SERVICE_URL": "",
    "ATTENDANCE_SERVICE_URL": "",
    # A sibling verifying the user service's tokens (clients/tokens.py). Without USER_SERVICE_JWT_ISSUER the
    # verifier falls back to JWT_ISSUER (the user service's own name for it, when it verifies its own tokens).
    "USER_SERVICE_JWKS_URL": "",
    "USER_SERVICE_JWT_ISSUER": "",
    "JWT_ISSUER": "",
    "USER_SERVICE_JWT_LEEWAY_SECONDS": 10.0,
    "USER_SERVICE_JWKS_REFETCH_SECONDS": 30.0,
    "USER_SERVICE_JWKS_MAX_AGE_SECONDS": 3600.0,
    "USER_SERVICE_DENY_LIST_MAX_ENTRIES": 100_000,
}


def client_setting(name: str) -> Any:
    """The Django setting ``name`` if the project defines it, else this package's default (KeyError if unknown)."""
    return getattr(settings, name, DEFAULTS[name])
