"""The one owner of the cache: every key, raw Redis access, pub/sub publishing and invalidation.

Nothing else in the service names a cache key or touches Redis: session state, the user's cached views
(public data, ``user/{id}/``, bulk JSON), service-account state, throttle counters, the revocation channel
and the health probe all live here. What is cached, and what a cached answer means, is decided by the
callers (``users.session_state`` for revocation); this module only stores and fetches.

Failure contract: a read that meets a Redis outage is a miss (the caller asks the database); a best-effort
write is dropped and logged; a *strict* write raises ``CacheUnavailable`` so the caller can refuse to
promise what it could not record. Every Redis connection goes through the per-process circuit breaker
(``users.cache.breaker``) with the ``REDIS_*_SECONDS`` timeouts, so a hung Redis costs one timeout per
``REDIS_BREAKER_SECONDS``, not one per call. Django's cache API swallows errors (``IGNORE_EXCEPTIONS``);
raw access goes through the cache's own client, so it shares the pool, key prefix and version.
"""

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from redis.exceptions import RedisError

from users.cache.breaker import CircuitOpen, breaker_for, breakers_reset, connection_class_for

__all__ = [
    "CacheUnavailable",
    "breakers_reset",
    "cache_check",
    "counter_incr",
    "oidc_client_forget",
    "oidc_client_get",
    "oidc_code_get",
    "oidc_code_put",
    "redis_breaker_open",
    "redis_client_for",
    "revocations_publish",
    "service_account_active_get",
    "service_account_invalidate",
    "session_state_get",
    "session_state_offer",
    "session_states_set",
    "session_with_user_get",
    "user_detail_get",
    "user_invalidate",
    "user_snapshot_get",
    "users_public_json_get",
]

logger = logging.getLogger(__name__)


class CacheUnavailable(Exception):
    """A strict cache write did not reach Redis (down, hung, or its breaker open)."""


def _outage(what: str, exc: RedisError) -> None:
    """One line per failed call; calls refused by the open breaker only at debug (the breaker logged the outage)."""
    logger.log(logging.DEBUG if isinstance(exc, CircuitOpen) else logging.WARNING, "%s: %r", what, exc)


# --- Keys -------------------------------------------------------------------------------------


def _session_key(session_id: str) -> str:
    return f"session:{session_id}"


def _user_snapshot_key(user_id: int) -> str:
    return f"user:{user_id}"


def _user_detail_key(user_id: int) -> str:
    return f"user-detail:{user_id}"


def _user_json_key(user_id: int) -> str:
    return f"user-json:{user_id}"


def _service_account_key(client_id: str) -> str:
    return f"service-account:{client_id}"


def _oidc_code_key(code_checksum: str) -> str:
    return f"oidc-code:{code_checksum}"


# --- Raw Redis --------------------------------------------------------------------------------


def _raw() -> Any:
    """The django-redis client wrapper of the default cache, or None when the cache is not Redis (embedded)."""
    client = getattr(cache, "client", None)
    return client if hasattr(client, "get_client") else None


class _ReadConnection(threading.local):
    """This thread's own connection for the hot path, made as the cache's pool makes its connections (so a
    ``BreakerConnection`` with the pool's timeouts), and the pool and process it belongs to."""

    connection: Any = None
    pool: Any = None
    pid: int = 0


_read_connection = _ReadConnection()


def _call(client: Any, *command: Any, primary: bool = False) -> Any:
    """Send one command on this thread's own connection and return Redis's reply; raises ``RedisError``.

    The reads of every authenticated request (one ``MGET`` or ``GET``) and an authorization code's write and read
    take this path instead of the pool's checkout and release, which cost more CPU than the round trip itself
    (README, "Benchmarks"). Nothing else changes: the connection is the pool's class, so every call passes the
    circuit breaker (``connect()`` asks it first) with the same socket timeouts; after any error the connection is
    dropped, so a reply that was not read can never answer a later command. A new process (after a fork) or a new
    pool (the cache reconfigured) makes a new connection. ``primary``: the server django-redis writes to (the same
    one unless the cache lists replicas), for a write or a read that must see one.

    The connection is built from the pool's class and settings but is not the pool's: the pool counts the
    connections it makes and refuses more than ``max_connections`` (redis-py's default is 100) without ever counting
    one down unless it comes back to it, so connections made by it for threads that end (a server's thread per
    client) or dropped after errors would use that budget up for good. This one is closed when dropped or when its
    thread ends.
    """
    pool = client.get_client(write=primary).connection_pool
    state = _read_connection
    connection = state.connection
    if connection is None or state.pool is not pool or state.pid != os.getpid():
        if connection is not None:
            connection.disconnect()  # in a forked child this only closes the inherited socket
        connection = pool.connection_class(**pool.connection_kwargs)
        state.connection, state.pool, state.pid = connection, pool, os.getpid()
    try:
        connection.connect()  # the breaker's check; connects only when not connected
        connection.send_command(*command)
        return connection.read_response()
    except BaseException:
        state.connection = None
        connection.disconnect()
        raise


def _get(key: str) -> Any:
    """``cache.get(key)`` on the cache's own connection: the same value, None on a miss or an outage.

    The reads of every authenticated request come through here (or ``session_with_user_get``).
    """
    client = _raw()
    if client is None:
        return cache.get(key)
    try:
        value = _call(client, "GET", client.make_key(key))
    except RedisError as exc:
        _outage("cache read failed; treated as a miss", exc)
        return None
    return None if value is None else client.decode(value)


def redis_client_for(url: str) -> redis.Redis:
    """A client for another Redis (the broker, for the health check): breaker, short timeouts, no retries."""
    return redis.Redis.from_url(
        url,
        connection_class=connection_class_for(url),
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
        retry=None,
    )


def redis_breaker_open(url: str) -> bool:
    """True while this process's breaker for the Redis at ``url`` is open (it failed a moment ago)."""
    if not url.startswith(("redis://", "rediss://")):
        return False
    parsed = urlsplit(url)
    return breaker_for(parsed.hostname or "localhost", parsed.port or 6379).is_open


def cache_check() -> None:
    """Write, read back and delete a probe key; raises if the cache does not return what was written."""
    key, value = f"health:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=5)
    if cache.get(key) != value:  # the Redis cache swallows errors and answers None
        raise ConnectionError("cache did not return what was written")
    cache.delete(key)


# --- Session state (users.session_state owns what the values mean) --------------------------------


def session_state_get(session_id: str) -> Any:
    """The cached state of a session, None on a miss or an outage."""
    return _get(_session_key(session_id))


def session_with_user_get(session_id: str, user_id: int) -> tuple[Any, dict | None]:
    """The session's cached state and the user's cached public data, in one round trip (None: miss/outage)."""
    session_key, user_key = _session_key(session_id), _user_snapshot_key(user_id)
    client = _raw()
    if client is None:
        found = cache.get_many([session_key, user_key]) or {}
        return found.get(session_key), found.get(user_key)
    # The hottest read of the service: one MGET on the cache's own connection (django-redis's get_many adds a
    # third of a round trip's CPU building and decoding its dict). Values decode as the cache API wrote them.
    try:
        state, user = _call(client, "MGET", client.make_key(session_key), client.make_key(user_key))
    except RedisError as exc:
        _outage("session state unavailable; asking the database", exc)
        return None, None
    return (None if state is None else client.decode(state)), (None if user is None else client.decode(user))


def session_state_offer(session_id: str, state: int, *, timeout: int) -> None:
    """Cache a state read from the database unless an entry exists (never overwrites); best effort."""
    cache.add(_session_key(session_id), state, timeout=timeout)


def session_states_set(session_ids: Iterable[str], state: int, *, timeout: int, strict: bool) -> None:
    """Overwrite the state of these sessions in one round trip.

    ``strict``: raise ``CacheUnavailable`` unless Redis acknowledged every write; otherwise log and go on.
    """
    keys = [_session_key(str(sid)) for sid in session_ids]
    if not keys:
        return
    client = _raw()
    if client is None:
        cache.set_many(dict.fromkeys(keys, state), timeout=timeout)
        return
    try:
        pipe = client.get_client(write=True).pipeline(transaction=False)
        for key in keys:
            pipe.set(client.make_key(key), state, ex=timeout)
        pipe.execute()
    except RedisError as exc:
        if strict:
            raise CacheUnavailable(f"session state not written: {exc.__class__.__name__}") from exc
        _outage("session state not written; readers will ask the database", exc)


def revocations_publish(*, session_ids: list[str]) -> None:
    """Push ended session ids on the channel local verifiers subscribe to (best effort).

    A lost message is not lost information: verifiers also poll ``revocations/``.
    """
    client = _raw()
    if client is None or not session_ids:
        return
    try:
        client.get_client(write=True).publish(settings.REVOCATION_CHANNEL, json.dumps({"session_ids": session_ids}))
    except RedisError as exc:
        _outage("revocations not published (verifiers poll them)", exc)


# --- Authorization codes between issue and exchange (users.services.oidc.codes owns what they hold) ---------


def oidc_code_put(code_checksum: str, record: str, *, timeout: int) -> bool:
    """Keep a pending authorization code's record under its checksum for ``timeout`` seconds, unless one is kept
    there already; True once Redis has it. False without Redis (the embedded mode) or when Redis did not take it
    (down, hung, its breaker open): the caller keeps the code in the database instead."""
    client = _raw()
    if client is None:
        return False
    try:
        key = client.make_key(_oidc_code_key(code_checksum))
        stored = _call(client, "SET", key, record, "EX", timeout, "NX", primary=True)
    except RedisError as exc:
        _outage("authorization code not kept in Redis; the database keeps it", exc)
        return False
    return stored is not None  # SET NX answers nil when the key exists


def oidc_code_get(code_checksum: str) -> str | None:
    """The record kept under a code's checksum; None if there is none (never kept here, expired, lost in a Redis
    restart) or Redis cannot answer."""
    client = _raw()
    if client is None:
        return None
    try:
        record = _call(client, "GET", client.make_key(_oidc_code_key(code_checksum)), primary=True)
    except RedisError as exc:
        _outage("authorization code records unavailable", exc)
        return None
    return None if record is None else record.decode()


# --- The user's cached views --------------------------------------------------------------------


def user_snapshot_get(user_id: int, *, load: Callable[[int], dict | None]) -> dict | None:
    """The user's public data, from the cache or ``load(user_id)`` (then cached); None if there is no such user."""
    return _read_through(_user_snapshot_key(user_id), lambda: load(user_id))


def user_detail_get(user_id: int, *, load: Callable[[int], dict | None]) -> dict | None:
    """The ``user/{id}/`` answer (the user with its profile), from the cache or ``load(user_id)``."""
    return _read_through(_user_detail_key(user_id), lambda: load(user_id))


def _read_through(key: str, load: Callable[[], dict | None]) -> dict | None:
    data = _get(key)
    if data is None:
        data = load()
        if data is not None:
            cache.set(key, data, timeout=settings.SESSION_STATE_CACHE_SECONDS)
    return data


def users_public_json_get(user_ids: list[int], *, load: Callable[[list[int]], list[tuple[int, str]]]) -> bytes:
    """A JSON array of the users' public JSON, in id order, joined from each user's cached text.

    With Redis the cached texts come back in one ``MGET`` and are joined as they are (no decoding per
    user); users not cached are read with ``load`` (one query) and cached. Unknown ids are absent and
    never cached. Without Redis, ``load`` answers every time.
    """
    ids = sorted(set(user_ids))
    client = _raw()
    if client is None:
        return b"[" + ",".join(text for _, text in load(ids)).encode() + b"]"
    keys = [client.make_key(_user_json_key(user_id)) for user_id in ids]
    try:
        cached = client.get_client(write=False).mget(keys) if keys else []
    except RedisError as exc:  # a Redis outage is a miss: the database answers
        _outage("bulk lookup cache unavailable", exc)
        cached = [None] * len(ids)
    found = {user_id: text for user_id, text in zip(ids, cached, strict=True) if text is not None}
    missing = [user_id for user_id in ids if user_id not in found]
    if missing:
        rows = load(missing)
        found.update((user_id, text.encode()) for user_id, text in rows)
        try:
            pipe = client.get_client(write=True).pipeline(transaction=False)
            for user_id, text in rows:
                pipe.set(client.make_key(_user_json_key(user_id)), text, ex=settings.SESSION_STATE_CACHE_SECONDS)
            pipe.execute()
        except RedisError as exc:
            _outage("bulk lookup cache unavailable", exc)
    return b"[" + b",".join(found[user_id] for user_id in ids if user_id in found) + b"]"


def user_invalidate(*, user_id: int) -> None:
    """Forget the cached views of this user after a write to it or its profile (now and after commit).

    After commit as well: a reader between the write and the commit may have cached the old row. A lost
    delete (Redis down) leaves a stale view for at most ``SESSION_STATE_CACHE_SECONDS``; revocation does
    not depend on these views (see ``users.session_state``).
    """
    keys = [_user_snapshot_key(user_id), _user_detail_key(user_id), _user_json_key(user_id)]
    cache.delete_many(keys)
    transaction.on_commit(lambda: cache.delete_many(keys))


# --- Service accounts ---------------------------------------------------------------------------


def service_account_active_get(client_id: str, *, load: Callable[[str], bool]) -> bool:
    """Whether the account is active, cached ``SERVICE_ACCOUNT_STATE_CACHE_SECONDS``."""
    key = _service_account_key(client_id)
    state = _get(key)
    if state is None:
        state = int(load(client_id))
        cache.set(key, state, timeout=settings.SERVICE_ACCOUNT_STATE_CACHE_SECONDS)
    return bool(state)


def service_account_invalidate(client_id: str) -> None:
    cache.delete(_service_account_key(client_id))


# --- OpenID Connect clients (process-local) ---------------------------------------------------------


_oidc_clients: dict[str, tuple[float, Any]] = {}


def oidc_client_get(client_id: str, *, load: Callable[[str], Any]) -> Any:
    """The client (django-oauth-toolkit's ``Application``) for authorization requests, kept in this process
    ``OIDC_CLIENT_CACHE_SECONDS``; ``load`` reads it from the database (an unknown client is not kept).

    In process memory, not Redis: reading it from Redis would cost the round trip a database read costs. A change
    reaches the process that makes it at once (``oidc_client_forget``) and the others within the setting. The
    instance is shared by the requests of this process: read it, never change it.
    """
    now = time.monotonic()
    kept = _oidc_clients.get(client_id)
    if kept is not None and kept[0] > now:
        return kept[1]
    client = load(client_id)
    if client is not None and settings.OIDC_CLIENT_CACHE_SECONDS > 0:
        _oidc_clients[client_id] = (now + settings.OIDC_CLIENT_CACHE_SECONDS, client)
    else:
        _oidc_clients.pop(client_id, None)
    return client


def oidc_client_forget(client_id: str) -> None:
    """Forget a client this process kept, after a change to it (now and after commit)."""
    _oidc_clients.pop(client_id, None)
    transaction.on_commit(lambda: _oidc_clients.pop(client_id, None))


# --- Counters (throttles) -------------------------------------------------------------------------


def counter_incr(key: str, *, timeout: int, amount: int = 1) -> tuple[int, int] | None:
    """Add ``amount`` (one) to a counter that lives ``timeout`` seconds from its first increment.

    Returns (count, seconds until the counter expires), or None if the cache is down. On Redis it is
    one round trip: INCR, then EXPIRE NX (a lifetime only for a counter without one) and TTL, pipelined.
    Whenever the counter expires, even between two of these commands, the INCR starts a new one and the
    EXPIRE NX gives it its lifetime: no counter is ever left without one. Other caches use add + incr.
    """
    client = _raw()
    if client is not None:
        redis_key = client.make_key(key)
        try:
            pipe = client.get_client(write=True).pipeline(transaction=False)
            pipe.incrby(redis_key, amount)
            pipe.expire(redis_key, timeout, nx=True)
            pipe.ttl(redis_key)
            count, _, ttl = pipe.execute()
        except RedisError as exc:
            _outage("throttle counter unavailable", exc)
            return None
        return count, ttl if ttl > 0 else timeout
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key, amount), timeout
    except ValueError:  # the key expired between add and incr
        cache.add(key, amount, timeout=timeout)
        return amount, timeout
