"""A per-process circuit breaker in front of every Redis this service talks to, at the connection level.

A hung Redis (stopped process, full network buffer) accepts TCP connections and never answers: each
command waits its whole socket timeout, and a request makes several. The first connection error or
timeout on an address opens its breaker for ``REDIS_BREAKER_SECONDS``: until then every command to that
address fails at once with ``ConnectionError``, which the callers already treat as an outage (readers
fall back to the database, revocation answers 503, throttles let the request through). When the period
is over, one caller is let through as a probe (the others still fail fast); its success closes the
breaker, its failure opens it again. Each process keeps its own state: nothing to share while Redis is down.

The breaker sits in the connection class (``BreakerConnection``), so it covers the Django cache, its raw
client, pub/sub publishing and the health check alike, whatever command they send.
"""

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django_redis.pool import ConnectionFactory
from redis.connection import Connection, SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class CircuitOpen(RedisConnectionError):
    """Refused without trying: this address failed a moment ago."""


class Breaker:
    """Open / probing / closed state of one Redis address in this process."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._open_until = 0.0  # monotonic; 0 = closed
        self._prober: int | None = None  # the thread probing, once the period is over
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._open_until > time.monotonic()

    def before_call(self) -> None:
        """Raise ``CircuitOpen`` while open; after the period, let exactly one caller through as the probe."""
        open_until = self._open_until
        if not open_until:
            return
        me = threading.get_ident()
        if self._prober == me:
            return
        now = time.monotonic()
        if now < open_until:
            raise CircuitOpen(f"Redis at {self.address} failed less than {settings.REDIS_BREAKER_SECONDS}s ago")
        with self._lock:
            if self._open_until > now:  # another thread took the probe
                raise CircuitOpen(f"Redis at {self.address} is being probed")
            if self._open_until:
                self._open_until, self._prober = now + settings.REDIS_BREAKER_SECONDS, me

    def failed(self, error: BaseException) -> None:
        if not isinstance(error, CircuitOpen):
            was_closed = not self._open_until
            self._open_until, self._prober = time.monotonic() + settings.REDIS_BREAKER_SECONDS, None
            if was_closed:  # one line per outage, not one traceback per call
                logger.warning(
                    "Redis at %s unavailable (%s); not called for %ss at a time",
                    self.address,
                    error.__class__.__name__,
                    settings.REDIS_BREAKER_SECONDS,
                )

    def succeeded(self) -> None:
        if self._open_until:
            self._open_until, self._prober = 0.0, None
            logger.warning("Redis at %s answers again", self.address)


_breakers: dict[str, Breaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(host: str, port: int | str) -> Breaker:
    address = f"{host}:{port}"
    found = _breakers.get(address)
    if found is None:
        with _breakers_lock:
            found = _breakers.setdefault(address, Breaker(address))
    return found


def breakers_reset() -> None:
    """Close every breaker of this process (tests, and after an operator fixed Redis)."""
    with _breakers_lock:
        _breakers.clear()


class BreakerMixin:
    """Wraps connect, send and read of a redis-py connection with the address's breaker."""

    host: str
    port: int

    @property
    def breaker(self) -> Breaker:
        found: Breaker | None = self.__dict__.get("_breaker")
        if found is None or found is not _breakers.get(found.address):
            found = breaker_for(self.host, self.port)
            self.__dict__["_breaker"] = found
        return found

    def connect(self) -> None:
        breaker = self.breaker
        breaker.before_call()
        try:
            super().connect()  # type: ignore[misc]
        except OUTAGE_ERRORS as exc:
            breaker.failed(exc)
            raise

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        breaker = self.breaker  # checked at connect(), which the pool calls on every checkout
        try:
            super().send_packed_command(command, check_health)  # type: ignore[misc]
        except OUTAGE_ERRORS as exc:
            breaker.failed(exc)
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        breaker = self.breaker
        try:
            response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except OUTAGE_ERRORS as exc:
            breaker.failed(exc)
            raise
        breaker.succeeded()
        return response


class BreakerConnection(BreakerMixin, Connection):
    pass


class BreakerSSLConnection(BreakerMixin, SSLConnection):
    pass


def connection_class_for(url: str) -> type[Connection]:
    return BreakerSSLConnection if url.startswith("rediss://") else BreakerConnection


class BreakerConnectionFactory(ConnectionFactory):
    """django-redis connection factory (``OPTIONS["CONNECTION_FACTORY"]``): pools of breaker connections."""

    def get_connection_pool(self, params: dict[str, Any]) -> Any:
        return super().get_connection_pool({**params, "connection_class": connection_class_for(params["url"])})
