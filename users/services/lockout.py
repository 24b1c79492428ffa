"""Brute-force defence for login and the client-credentials grant: per-account and per-IP lockouts.

Every attempt first reserves a slot with an atomic increment, so N parallel guesses evaluate at most
``LOGIN_LOCKOUT_THRESHOLD`` passwords, not N. The Kth failure within ``LOGIN_LOCKOUT_WINDOW_SECONDS``
locks the account for ``LOGIN_LOCKOUT_SECONDS``, doubled for each further lockout within a day (like
Keycloak's wait increment) up to ``LOGIN_LOCKOUT_MAX_SECONDS``; while locked, even the right password
gets 429 with ``Retry-After``. A client IP with ``LOGIN_IP_THRESHOLD`` failures across any accounts is
locked for ``LOGIN_IP_LOCKOUT_SECONDS`` (credential stuffing). A success clears the account's count.
Unknown accounts are counted and locked exactly like real ones, so a lockout reveals nothing.
State lives in the shared cache (Redis); if Redis is down the defence is off and logins still work.
"""

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from user_service.exceptions import ApplicationError
from users import metrics
from users.models import SecurityEvent
from users.services.audit import security_event_record

LEVEL_MEMORY_SECONDS = 24 * 3600


class AccountLocked(ApplicationError):
    default_code = "locked_out"


@dataclass(frozen=True)
class Subject:
    """Whom attempts are counted against: an account (by id, or by the identifier typed) and a client IP."""

    kind: str  # "login" or "service"
    account: str
    ip: str | None

    @classmethod
    def for_login(cls, *, user_id: int | None, identifier: str, ip: str | None) -> "Subject":
        account = f"user:{user_id}" if user_id else f"name:{identifier.strip().lower()}"
        return cls(kind="login", account=account, ip=ip)

    def key(self, part: str, value: str) -> str:
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # no raw identifiers or IPs in key names
        return f"lockout:{self.kind}:{part}:{digest}"


def _locked_for(key: str) -> int:
    until = cache.get(key)
    return max(1, math.ceil(until - time.time())) if until and until > time.time() else 0


def _incr(key: str, window: int) -> int | None:
    cache.add(key, 0, timeout=window)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 0, timeout=window)
        return cache.incr(key)


def _lock(subject: Subject, *, part: str, value: str, seconds: int) -> bool:
    """Start a lock unless one is running; True if this call started it (so it is counted once)."""
    if not cache.add(subject.key(f"{part}-lock", value), time.time() + seconds, timeout=seconds):
        return False
    metrics.LOCKOUTS.labels(kind=f"{subject.kind}-{part}").inc()
    security_event_record(
        event_type=SecurityEvent.Type.LOCKOUT,
        ip=subject.ip,
        data={"scope": part, "kind": subject.kind, "account": subject.account, "seconds": seconds},
    )
    return True


def attempt_reserve(subject: Subject) -> None:
    """Refuse (429) if the IP or account is locked or out of attempts; otherwise count this attempt."""
    if subject.ip and (wait := _locked_for(subject.key("ip-lock", subject.ip))):
        raise AccountLocked("Too many failed attempts from this address; try again later.", extra={"retry_after": wait})
    if wait := _locked_for(subject.key("account-lock", subject.account)):
        raise AccountLocked("Too many failed attempts; try again later.", extra={"retry_after": wait})
    attempts = _incr(subject.key("account-count", subject.account), settings.LOGIN_LOCKOUT_WINDOW_SECONDS)
    if attempts is not None and attempts > settings.LOGIN_LOCKOUT_THRESHOLD:
        # a parallel burst: the slots are taken; the lock is being (or has been) set by the Kth failure
        wait = _locked_for(subject.key("account-lock", subject.account)) or settings.LOGIN_LOCKOUT_SECONDS
        raise AccountLocked("Too many failed attempts; try again later.", extra={"retry_after": wait})


def attempt_failed(subject: Subject) -> None:
    """Record a failure; the Kth one locks the account, growing with repeated lockouts."""
    count_key = subject.key("account-count", subject.account)
    if (cache.get(count_key) or 0) >= settings.LOGIN_LOCKOUT_THRESHOLD:
        level_key = subject.key("account-level", subject.account)
        level = (cache.get(level_key) or 0) + 1
        seconds = min(settings.LOGIN_LOCKOUT_SECONDS * 2 ** (level - 1), settings.LOGIN_LOCKOUT_MAX_SECONDS)
        if _lock(subject, part="account", value=subject.account, seconds=seconds):
            _incr(level_key, LEVEL_MEMORY_SECONDS)
            cache.delete(count_key)
    if subject.ip:
        failures = _incr(subject.key("ip-count", subject.ip), settings.LOGIN_LOCKOUT_WINDOW_SECONDS)
        if failures is not None and failures >= settings.LOGIN_IP_THRESHOLD:
            _lock(subject, part="ip", value=subject.ip, seconds=settings.LOGIN_IP_LOCKOUT_SECONDS)
            cache.delete(subject.key("ip-count", subject.ip))


def attempt_succeeded(subject: Subject) -> None:
    """A success clears the account's failure count (the lockout level decays on its own)."""
    cache.delete(subject.key("account-count", subject.account))
