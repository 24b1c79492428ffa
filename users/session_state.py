"""Cached "is this login session still alive?" answers, so revocation costs no query per request.

The database is the source of truth. The cache holds, per session id, the owning user id while the
session is alive and 0 once it has ended. Ending a session writes "ended" at once (fail closed) and
again after commit; readers fill a miss with ``cache.add``, which never overwrites, so a reader that
looked at the database just before the commit cannot put "alive" back. A revoked token is refused at
once on every process sharing the cache. If a cache write is lost (Redis down), a stale "alive" entry
lives at most ``SESSION_STATE_CACHE_SECONDS``.
"""

import json
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from users.models import UserSession
from users.selectors import snapshot_key, user_snapshot

logger = logging.getLogger(__name__)
ENDED = 0
_publisher = None


def _key(session_id: str) -> str:
    return f"session:{session_id}"


def session_is_alive(*, session_id: str, user_id: int) -> bool:
    """True if the session is open, unexpired, and belongs to an active ``user_id``."""
    state = cache.get(_key(session_id))
    if state is None:
        state = _state_load(session_id)
    return state == user_id


def session_user_snapshot(*, session_id: str, user_id: int) -> dict | None:
    """The user's public data if the session is alive, else None: one cache round trip when warm."""
    session_key, user_key = _key(session_id), snapshot_key(user_id)
    found = cache.get_many([session_key, user_key])
    state = found.get(session_key)
    if state is None:
        state = _state_load(session_id)
    if state != user_id:
        return None
    return found.get(user_key) or user_snapshot(user_id=user_id)


def _state_load(session_id: str) -> int:
    """Read the session's state from the database and offer it to the cache (never overwriting)."""
    state = (
        UserSession.objects.filter(
            pk=session_id, ended_at__isnull=True, expires_at__gt=timezone.now(), user__is_active=True
        )
        .values_list("user_id", flat=True)
        .first()
    ) or ENDED
    timeout = settings.SESSION_STATE_CACHE_SECONDS if state else _ended_timeout()
    cache.add(_key(session_id), state, timeout=timeout)
    return state


def _ended_timeout() -> int:
    # After this no access token of the session can still be within its lifetime.
    return int(settings.JWT_ACCESS_LIFETIME.total_seconds()) + settings.JWT_LEEWAY_SECONDS + 60


def sessions_mark_ended(session_ids: Iterable[str]) -> None:
    """Record these sessions as ended in the cache now and again once the transaction commits."""
    keys = {_key(str(sid)): ENDED for sid in session_ids}
    if keys:
        cache.set_many(keys, timeout=_ended_timeout())
        ids = [str(sid) for sid in session_ids]

        def after_commit() -> None:
            cache.set_many(keys, timeout=_ended_timeout())
            revocations_publish(session_ids=ids)

        transaction.on_commit(after_commit)


def revocations_publish(*, session_ids: list[str]) -> None:
    """Push ended session ids on the Redis channel local verifiers subscribe to (best effort).

    A lost message is not lost information: verifiers also poll ``revocations/``.
    """
    global _publisher  # one pooled client per process
    if not settings.REDIS_URL or not session_ids:
        return
    try:
        import redis

        if _publisher is None:
            _publisher = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
        _publisher.publish(settings.REVOCATION_CHANNEL, json.dumps({"session_ids": session_ids}))
    except Exception as exc:  # best effort; the poll endpoint carries the same data
        logger.warning("could not publish revocations: %s", exc.__class__.__name__)
