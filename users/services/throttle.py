"""The sign-in rate limit of the pages: the API's ``login`` throttle counter, shared (same key, same rate).

A client IP gets ``THROTTLE_LOGIN_RATE`` sign-in attempts (passwords, codes, passkey options and answers),
counted across the API's ``login/`` family, the SSO pages and the admin's sign-in pages
(``users.cache.counter_incr``, the one counting primitive; the key is the one DRF's throttle of ``login/``
uses). Like the API's throttles it fails open while the cache is down; the lockout
(``users.services.credentials``) is what holds then.
"""

from django.conf import settings
from django.http import HttpRequest

from users import cache
from users.http import client_ip, client_throttle_exempt

SCOPE = "login"
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def sign_in_wait_seconds(request: HttpRequest) -> int | None:
    """Seconds this client must wait before another sign-in attempt, or None if it may try now (and counts it)."""
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].get(SCOPE)
    if not rate or client_throttle_exempt(request):
        return None
    count, _, period = rate.partition("/")
    allowed, duration = int(count), PERIODS[period[0]]
    ident = (client_ip(request) or "").replace(" ", "")
    counted = cache.counter_incr(f"throttle_{SCOPE}_{ident}", timeout=duration)
    if counted is None:
        return None
    used, wait = counted
    return max(1, int(wait)) if used > allowed else None
