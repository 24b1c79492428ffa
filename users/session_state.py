"""Cached "is this login session still alive?" answers, and the promise that revocation keeps through Redis faults.

The database is the source of truth; the cache (``users.cache``) holds, per session id, one of:

- the owning user id: the session is alive (a database answer, cached ``SESSION_STATE_CACHE_SECONDS``);
- ``ENDED`` (0): the session has ended;
- ``CHECK_DATABASE`` (-1): an end is being written; do not trust the cache, ask the database.

The promise (DESIGN §5): after a 2xx logout, password change, session revoke or deactivation, no request
accepts that session's tokens, whatever Redis did. Every one of them ends sessions through
``sessions_mark_ended``, which keeps it this way:

1. Inside the transaction that ends the sessions, before it commits, ``CHECK_DATABASE`` is written over
   whatever the cache held, and Redis must acknowledge it (short timeout, circuit breaker). If it cannot
   (down, hung, breaker open), ``RevocationUnavailable`` rolls the transaction back and the caller gets
   503: nothing ended, nothing promised. So every committed end has its marker in Redis before the
   client hears 2xx, and an "alive" entry written before the end can no longer be read.
2. After commit, ``ENDED`` replaces the marker (best effort) and the ids are published to local verifiers.
   If that write is lost, the marker stays and readers ask the database, which says ended.
3. Readers trust only "alive" and ``ENDED``. ``CHECK_DATABASE``, a miss, or any cache error sends them to
   the database; they never answer from a failed cache and never fail because of one. A miss is filled
   with ``add`` (never overwrites), so a reader that looked at the database just before the commit cannot
   put "alive" back over a marker.

What each Redis fault does to it:

- hung or down while ending: 503, the session stays alive in both places. A write that was still queued
  in a stopped Redis may land when it resumes: it is ``CHECK_DATABASE``, so readers ask the database,
  which says alive. Answers stay consistent; that session only costs a query per request until the marker
  expires (a marker for ``ENDED`` would wrongly refuse it for minutes).
- flushed, or restarted empty: every entry is a miss, the database answers, and the entries are refilled.
- restarted with its data (RDB/AOF written after the end): the marker or ``ENDED`` is there.
- the one fault this cannot see: Redis coming back with data older than the end, i.e. restored from a
  snapshot taken before it, or an append-only file that lost its last second in a crash
  (``appendfsync everysec``) while holding the marker. The older "alive" entry then returns, and it
  expires at its original time, at most ``SESSION_STATE_CACHE_SECONDS`` after it was written. Run the
  cache on a Redis without persistence (a flush or empty restart is safe), or with ``appendfsync always``.

The "ended" entries live past the lifetime of any access token of the session, after which the
signature check alone refuses the tokens.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from users import cache
from users.exceptions import RevocationUnavailable
from users.models import CustomUser, UserSession
from users.selectors import user_public_data

logger = logging.getLogger(__name__)
ENDED = 0
CHECK_DATABASE = -1


@dataclass(frozen=True)
class LiveSession:
    """A session that is alive: its owner, and the owner's public data if it was asked for (None if gone)."""

    user_id: int
    user: dict[str, Any] | None = None


def session_live_get(*, session_id: str, user_id: int, with_user: bool = False) -> LiveSession | None:
    """The session if it is open, unexpired and belongs to an active ``user_id``; else None.

    ``with_user`` also reads the user's public data, in the same cache round trip as the session state.
    """
    if with_user:
        state, user = cache.session_with_user_get(session_id, user_id)
    else:
        state, user = cache.session_state_get(session_id), None
    if state is None or state == CHECK_DATABASE:
        state = _state_load(session_id, offer=state is None)
    if state != user_id:
        return None
    if with_user and user is None:
        user = cache.user_snapshot_get(user_id, load=_user_public_data_load)
    return LiveSession(user_id=user_id, user=user)


def _user_public_data_load(user_id: int) -> dict | None:
    user = CustomUser.objects.filter(pk=user_id).first()
    return None if user is None else user_public_data(user)


def _state_load(session_id: str, *, offer: bool) -> int:
    """Read the session's state from the database; on a miss, offer it to the cache (never overwriting)."""
    state = (
        UserSession.objects.filter(
            pk=session_id, ended_at__isnull=True, expires_at__gt=timezone.now(), user__is_active=True
        )
        .values_list("user_id", flat=True)
        .first()
    ) or ENDED
    if offer:
        timeout = settings.SESSION_STATE_CACHE_SECONDS if state else _ended_timeout()
        cache.session_state_offer(session_id, state, timeout=timeout)
    return state


def _ended_timeout() -> int:
    # After this no access token of the session can still be within its lifetime.
    return int(settings.JWT_ACCESS_LIFETIME.total_seconds()) + settings.JWT_LEEWAY_SECONDS + 60


def sessions_mark_ended(session_ids: Iterable[str]) -> None:
    """Inside the transaction ending these sessions: make the cache refuse them, or raise (see the essay).

    Raises ``RevocationUnavailable`` (the transaction must roll back) if Redis did not take the marker.
    """
    ids = [str(sid) for sid in session_ids]
    if not ids:
        return
    try:
        cache.session_states_set(ids, CHECK_DATABASE, timeout=_ended_timeout(), strict=True)
    except cache.CacheUnavailable as exc:
        logger.warning("sessions not ended, the revocation store is unavailable: %s", exc)
        raise RevocationUnavailable(
            "Sessions cannot be ended right now; nothing was changed. Retry shortly.",
            extra={"retry_after": max(1, round(settings.REDIS_BREAKER_SECONDS))},
        ) from exc

    def after_commit() -> None:
        cache.session_states_set(ids, ENDED, timeout=_ended_timeout(), strict=False)
        cache.revocations_publish(session_ids=ids)

    transaction.on_commit(after_commit, robust=True)
