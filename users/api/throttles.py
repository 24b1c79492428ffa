"""Request throttles (DRF, on the shared cache): per client IP for public endpoints, per principal otherwise.

Deliberately not throttled: health checks (probes), the JWKS and discovery documents (cacheable, needed by
every verifier), and validate-token (a gateway calls it for all its users from one address; a per-IP limit
would throttle a whole school). Login and service-token also have lockouts (users/services/lockout.py).
"""

import logging
import time

from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from users.rawcache import redis_cache_client

logger = logging.getLogger(__name__)


class PublicEndpointThrottle(ScopedRateThrottle):
    """Per client IP (X-Forwarded-For trusted only behind TRUSTED_PROXY_COUNT proxies), by the view's scope."""

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def window_count(key: str, *, timeout: int) -> int | None:
    """Add one to a counter that lives ``timeout`` seconds and return it; None if the cache is down.

    On Redis it is one round trip (SET NX EX and INCR pipelined); other caches use add + incr.
    """
    client = redis_cache_client()
    if client is not None:
        redis_key = client.make_key(key)
        try:
            pipe = client.get_client(write=True).pipeline(transaction=False)
            pipe.set(redis_key, 0, ex=timeout, nx=True)
            pipe.incr(redis_key)
            return pipe.execute()[1]
        except RedisError:
            logger.warning("throttle counter unavailable", exc_info=True)
            return None
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.add(key, 1, timeout=timeout)
        return 1


class PrincipalThrottle(SimpleRateThrottle):
    """Per signed-in person or service account: a generous ceiling against runaway clients.

    A fixed-window counter (one atomic INCR per request) rather than DRF's sliding history, which stores
    every request's timestamp in one cached list: at thousands per minute that list costs more than the
    request it guards.
    """

    scope = "principal"
    # Set by SimpleRateThrottle.__init__ from the rate (the stubs leave them out); read only when a rate is set.
    num_requests: int
    duration: int

    def get_cache_key(self, request, view):
        user = request.user
        if getattr(user, "is_service", False):
            ident = f"service:{user.client_id}"
        elif getattr(user, "is_authenticated", False):
            ident = f"user:{user.pk}"
        else:
            return None  # anonymous: public endpoints carry their own scoped throttle
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        count = window_count(f"{key}:{window}", timeout=self.duration + 1)
        if count is None:  # the cache is down: do not fail requests over a rate limit
            return True
        self._wait = self.duration - (now % self.duration)
        return count <= self.num_requests

    def wait(self) -> float:
        return getattr(self, "_wait", self.duration)
