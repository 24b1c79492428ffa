"""Request throttles (DRF, on the shared cache): per client IP for public endpoints, per principal otherwise.

Every throttle counts with one primitive, ``users.cache.counter_incr``: a counter per client and scope that
lives one period from its first request (one Redis round trip), instead of DRF's history of timestamps in a
cached list (a read and a write of the whole list per request). While Redis is unavailable the counter
answers None and the throttles let requests through (fail open): the circuit breaker makes that answer
immediate, so a Redis outage never slows a request down on its way past a throttle. The public endpoints' per-IP
counters are ``users.services.throttle``'s, which the pages and ``/oidc/token/`` count on too.

Deliberately not throttled: health checks (probes), the JWKS and discovery documents (cacheable, needed by
every verifier), and validate-token (a gateway calls it for all its users from one address; a per-IP limit
would throttle a whole school). Login and service-token also have lockouts (users/services/lockout.py).
The per-principal ceiling (3,000/min by default) is counted in batches for busy principals: each process
counts a principal's requests locally and adds them to the shared counter every ``rate / LOCAL_BATCH_SHARE``
requests or every ``LOCAL_SYNC_SECONDS``, whichever comes first, deciding meanwhile on the last shared count
plus its own. A gateway calling ``user/{id}/`` for every page it serves so pays the Redis round trip of its
throttle about once per 30 requests instead of on each; the price is that the ceiling may be passed by up to
1 % of the rate per process before every process sees it. Rates under twice ``LOCAL_BATCH_SHARE`` per period (and the
public endpoints' scoped throttles: login, register, refresh, ...) count every request in Redis at once.

Callers in ``THROTTLE_EXEMPT_NETWORKS`` (a frontend posting every person's login from its own address) are not
counted per IP at all: a school's morning rush through one frontend is not a flood from one client.
"""

import threading
import time
from dataclasses import dataclass

from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from users import cache
from users.services.throttle import client_wait_seconds


class CounterThrottle(SimpleRateThrottle):
    """A DRF throttle counting on ``users.cache.counter_incr``; subclasses say whose requests are counted."""

    # Set by SimpleRateThrottle.__init__ from the rate ("60/min": 60 requests, 60 seconds).
    num_requests: int
    duration: int
    _wait: float

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        counted = cache.counter_incr(key, timeout=self.duration)
        if counted is None:  # the cache is down: do not fail requests over a rate limit
            return True
        count, self._wait = counted
        return count <= self.num_requests

    def wait(self) -> float:
        return self.__dict__.get("_wait", self.duration)


class PublicEndpointThrottle(BaseThrottle):
    """Per client IP, by the view's scope: ``users.services.throttle.client_wait_seconds``, the counter the SSO pages,
    the admin's sign-in pages and ``/oidc/token/`` count on too (same key, same rate)."""

    scope_attr = "throttle_scope"
    _wait: int | None = None

    def allow_request(self, request, view) -> bool:
        scope = getattr(view, self.scope_attr, None)
        self._wait = client_wait_seconds(request, scope=scope) if scope else None
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


LOCAL_BATCH_SHARE = 100  # a process adds its count to the shared one at least every 1/100 of the rate
LOCAL_SYNC_SECONDS = 1.0  # ... and at least once a second


@dataclass
class _LocalCount:
    shared: int  # the shared count when last added to
    pending: int  # requests counted here since then
    synced_at: float
    expires_at: float  # the shared counter's end, as Redis said


_local_counts: dict[str, _LocalCount] = {}
_local_lock = threading.Lock()


def local_counts_forget() -> None:
    """Forget this process's batched counts (tests, after clearing the cache)."""
    with _local_lock:
        _local_counts.clear()


class PrincipalThrottle(CounterThrottle):
    """Per signed-in person or service account: a generous ceiling against runaway clients (counted in batches)."""

    scope = "principal"

    def allow_request(self, request, view) -> bool:
        batch = (self.num_requests or 0) // LOCAL_BATCH_SHARE
        if self.rate is None or batch <= 1:
            return super().allow_request(request, view)
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.monotonic()
        with _local_lock:
            local = _local_counts.get(key)
            if (
                local is not None
                and local.pending < batch
                and now - local.synced_at < LOCAL_SYNC_SECONDS
                and now < local.expires_at
            ):
                local.pending += 1
                self._wait = local.expires_at - now
                return local.shared + local.pending <= self.num_requests
            pending = local.pending if local is not None and now < local.expires_at else 0
            _local_counts.pop(key, None)
        counted = cache.counter_incr(key, timeout=self.duration, amount=pending + 1)
        if counted is None:  # the cache is down: do not fail requests over a rate limit
            return True
        count, self._wait = counted
        with _local_lock:
            if len(_local_counts) >= 10_000:  # many principals: forget the others rather than grow
                _local_counts.clear()
            _local_counts[key] = _LocalCount(shared=count, pending=0, synced_at=now, expires_at=now + self._wait)
        return count <= self.num_requests

    def get_cache_key(self, request, view):
        user = request.user
        if getattr(user, "is_service", False):
            ident = f"service:{user.client_id}"
        elif getattr(user, "is_authenticated", False):
            ident = f"user:{user.pk}"
        else:
            return None  # anonymous: public endpoints carry their own scoped throttle
        return self.cache_format % {"scope": self.scope, "ident": ident}
