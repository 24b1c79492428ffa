"""Per-client-IP rate limits by scope: one counter per scope and client, whichever entry point the client calls.

A scope's rate is its ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` entry ("60/min"; None: no limit). The API's
public endpoints (``users.api.throttles.PublicEndpointThrottle``), the SSO pages, the admin's sign-in pages and
``/oidc/token/`` all count here, so a client gets ``THROTTLE_LOGIN_RATE`` sign-in attempts across the API's
``login/`` family and the pages, and ``THROTTLE_SERVICE_TOKEN_RATE`` client-credentials grants across
``service-token/`` and ``/oidc/token/``. The client is its IP as ``users.http.client_ip`` answers it (the address
the lockout counts). Counting is ``users.cache.counter_incr``: while the cache is down it fails open, and the
lockout (``users.services.credentials``) is what holds then. Callers in ``THROTTLE_EXEMPT_NETWORKS`` are not counted.
"""

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

from users import cache
from users.http import client_ip, client_throttle_exempt

LOGIN_SCOPE = "login"
CLIENT_CREDENTIALS_SCOPE = "service_token"  # service-token/ and /oidc/token/'s grant
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def client_wait_seconds(request: HttpRequest | Request, *, scope: str) -> int | None:
    """Seconds this client must wait before another request of ``scope``, or None if it may go now (and counts it)."""
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]  # a scope without an entry is a mistake
    if not rate or client_throttle_exempt(request):
        return None
    count, _, period = rate.partition("/")
    allowed, duration = int(count), PERIODS[period[0]]
    counted = cache.counter_incr(f"throttle_{scope}_{client_ip(request) or ''}", timeout=duration)
    if counted is None:
        return None
    used, wait = counted
    return max(1, int(wait)) if used > allowed else None


def sign_in_wait_seconds(request: HttpRequest) -> int | None:
    """Seconds this client must wait before another sign-in attempt, or None if it may try now (and counts it)."""
    return client_wait_seconds(request, scope=LOGIN_SCOPE)
