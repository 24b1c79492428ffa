"""A bounded in-memory deny-list of revoked login sessions and users, consulted by the token verifier."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)


class DenyList:
    """Bounded in-memory record of revoked session ids and user ids, consulted by every verification.

    - A denied **session id** refuses every token carrying that ``sid`` (sessions are never reused).
    - A denied **user id** refuses the user's tokens issued up to the revocation time (``iat <= revoked_at +
      skew_seconds``), so a user reactivated later gets working tokens again without a restart.

    An entry is only useful while tokens issued before it can still be alive, so entries older than
    ``ttl_seconds`` (keep it above the access-token lifetime plus leeway) are dropped. Past ``max_entries`` the
    oldest entries are dropped too, with a warning: size it well above the revocations of one ``ttl_seconds``.
    Writes take a lock; the verification path only reads.
    """

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        ttl_seconds: float = 3600,
        skew_seconds: float = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self.skew_seconds = skew_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}
        self._users: dict[str, float] = {}

    def deny(
        self, *, session_ids: Iterable[object] = (), user_ids: Iterable[object] = (), revoked_at: float | None = None
    ) -> None:
        """Refuse tokens of these sessions, and of these users issued until ``revoked_at`` (epoch s, default now)."""
        moment = self._clock() if revoked_at is None else float(revoked_at)
        with self._lock:
            for entries, ids in ((self._sessions, session_ids), (self._users, user_ids)):
                for raw in ids:
                    key = str(raw)
                    entries[key] = max(moment, entries.pop(key, moment))  # re-insert: keeps insertion = age order
                self._prune(entries)

    def refuses(self, claims: Mapping[str, Any]) -> bool:
        """True if the token's session or its user (for tokens issued before the revocation) is denied."""
        if self._sessions and claims.get("sid") in self._sessions:
            return True
        if self._users:
            revoked_at = self._users.get(str(claims.get("sub")))
            if revoked_at is not None:
                issued_at = claims.get("iat")
                return not isinstance(issued_at, int | float) or issued_at <= revoked_at + self.skew_seconds
        return False

    def __len__(self) -> int:
        return len(self._sessions) + len(self._users)

    def _prune(self, entries: dict[str, float]) -> None:
        horizon = self._clock() - self.ttl_seconds
        while entries:
            oldest = next(iter(entries))
            if entries[oldest] >= horizon and len(entries) <= self.max_entries:
                break
            if entries[oldest] >= horizon:
                logger.warning("token deny-list full; dropping a live entry", extra={"max_entries": self.max_entries})
            del entries[oldest]
