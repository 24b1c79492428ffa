"""Brute-force defence for every way in (API login, admin login, service-token): per-account and per-IP lockouts.

What it promises. The Kth failure (``LOGIN_LOCKOUT_THRESHOLD``) against one account within
``LOGIN_LOCKOUT_WINDOW_SECONDS`` locks it for ``LOGIN_LOCKOUT_SECONDS``, doubled for each further lockout
within a day (like Keycloak's wait increment) up to ``LOGIN_LOCKOUT_MAX_SECONDS``; while locked, even the
right password gets 429 with ``Retry-After``. ``LOGIN_IP_THRESHOLD`` failures from one client IP across any
accounts lock that IP for ``LOGIN_IP_LOCKOUT_SECONDS`` (credential stuffing). A success clears the account's
failure count; the lockout level decays on its own. Addresses in ``THROTTLE_EXEMPT_NETWORKS`` (trusted callers
that send many people's logins from one address) are neither counted nor locked per IP; their accounts are.
Unknown accounts are counted and locked exactly like real ones (by the identifier typed), so a lockout reveals
nothing. Every entry point reaches this module through ``users.services.credentials``, so the counters are
shared: a lock made through the API holds on the admin's login form and back.

Where the state lives. One ``LockoutCounter`` row per subject (an account, or a client IP, each per kind) in
the database, keyed by a hash. Not in Redis: the defence must hold while Redis is down and after it restarts
empty, and a login pays for an Argon2 verify anyway, next to which a few short statements are noise. Every
write is one autocommitted statement that reads and changes its row atomically (an UPDATE whose condition is
in its WHERE clause, or INSERT ... ON CONFLICT DO UPDATE ... RETURNING), the same SQL on PostgreSQL and
SQLite; no transaction is held across the password verify. So the caller must not run an attempt inside a
transaction that the refusal rolls back: the failure would not stay counted.

An attempt, step by step:

1. Check: one SELECT of the account's and the IP's rows. A running lock refuses at once, before any password
   work and without a write.
2. Slot (password logins): the attempt takes one of the account's K slots, granted only while failures plus
   attempts in flight stay below K, so a parallel burst of guesses evaluates at most K passwords per lock
   period, not one per request. An attempt that finds every slot taken waits for one (it polls for up to
   ``SLOT_WAIT_SECONDS``) rather than being refused: simultaneous logins with the right password all get in,
   K at a time, while K wrong ones in flight lock the account and the attempts waiting behind them are refused
   when they look again. Refusing in-flight attempts outright (a bare counter of attempts) turns concurrent
   correct logins into 429s; serialising per account (a row lock held across the verify) keeps a transaction
   and a connection idle through every Argon2 run and, on SQLite, serialises every login of the process.
   A slot left behind by a process killed mid-verify is forgotten once no attempt has taken one for
   ``STALE_SLOT_SECONDS``.
3. Verify: the caller's work.
4. Settle. A failure is one upsert per row (count + 1 within the window, the slot given back) that returns the
   count; the Kth starts the lock with a conditional UPDATE (WHERE failures >= K AND not locked, resetting the
   count) that exactly one caller wins, so one burst makes one lockout record. A success gives the slot back
   and clears the count; an account with nothing left to remember loses its row.

Client secrets (kind ``service``) take no slot: they are 256 random bits checked with one SHA-256, so no burst
can guess one and a bound on bursts buys nothing. A successful grant costs the one SELECT of step 1 and writes
nothing unless there are failures to clear. Rows with nothing left to remember are deleted by
``lockout_counters_prune`` (the periodic cleanup).
"""

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Q

from user_service.exceptions import ApplicationError
from users import metrics
from users.http import address_in_networks
from users.models import LockoutCounter, SecurityEvent
from users.services.audit import security_event_record

LEVEL_MEMORY_SECONDS = 24 * 3600
SLOT_WAIT_SECONDS = 5.0
STALE_SLOT_SECONDS = 30.0

_TABLE = LockoutCounter._meta.db_table
_COLUMNS = "subject, failures, window_started, in_flight, in_flight_since, locked_until, level, last_locked_at"
_LIVE_FAILURES = "(CASE WHEN window_started < %(window_start)s THEN 0 ELSE failures END)"
_LIVE_IN_FLIGHT = "(CASE WHEN in_flight_since < %(stale)s THEN 0 ELSE in_flight END)"

_SLOT_TAKE = f"""
UPDATE {_TABLE} SET in_flight = {_LIVE_IN_FLIGHT} + 1, in_flight_since = %(now)s
WHERE subject = %(subject)s AND locked_until <= %(now)s AND {_LIVE_FAILURES} + {_LIVE_IN_FLIGHT} < %(threshold)s
"""  # noqa: S608 - the table name is the model's; every value is a parameter
_SLOT_FIRST = f"""
INSERT INTO {_TABLE} ({_COLUMNS}) VALUES (%(subject)s, 0, %(now)s, 1, %(now)s, 0, 0, 0)
ON CONFLICT (subject) DO NOTHING
"""  # noqa: S608
_SLOT_GIVE_BACK = f"""
UPDATE {_TABLE} SET in_flight = CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END WHERE subject = %(subject)s
"""  # noqa: S608
_FAILURE = f"""
INSERT INTO {_TABLE} ({_COLUMNS}) VALUES (%(subject)s, 1, %(now)s, 0, 0, 0, 0, 0)
ON CONFLICT (subject) DO UPDATE SET
    failures = (CASE WHEN {_TABLE}.window_started < %(window_start)s THEN 0 ELSE {_TABLE}.failures END) + 1,
    window_started = CASE WHEN {_TABLE}.window_started < %(window_start)s
        THEN %(now)s ELSE {_TABLE}.window_started END,
    in_flight = CASE WHEN %(slot)s AND {_TABLE}.in_flight > 0 THEN {_TABLE}.in_flight - 1 ELSE {_TABLE}.in_flight END
RETURNING failures, level, last_locked_at
"""  # noqa: S608
_LOCK = f"""
UPDATE {_TABLE} SET locked_until = %(until)s, level = %(level)s, last_locked_at = %(now)s,
    failures = 0, window_started = %(now)s
WHERE subject = %(subject)s AND failures >= %(threshold)s AND locked_until <= %(now)s
"""  # noqa: S608
_FORGET = f"""
DELETE FROM {_TABLE} WHERE subject = %(subject)s AND locked_until <= %(now)s
    AND (level = 0 OR last_locked_at < %(level_start)s) AND (in_flight <= %(mine)s OR in_flight_since < %(stale)s)
"""  # noqa: S608
_SUCCESS = f"""
UPDATE {_TABLE} SET failures = 0,
    in_flight = CASE WHEN %(slot)s AND in_flight > 0 THEN in_flight - 1 ELSE in_flight END
WHERE subject = %(subject)s
"""  # noqa: S608


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

    @classmethod
    def for_client(cls, *, client_id: str, ip: str | None) -> "Subject":
        return cls(kind="service", account=f"client:{client_id}", ip=ip)

    @property
    def takes_slots(self) -> bool:
        return self.kind == "login"

    def key(self, part: str, value: str) -> str:
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # no raw identifiers or IPs in the table
        return f"{self.kind}:{part}:{digest}"

    @property
    def account_key(self) -> str:
        return self.key("account", self.account)

    @property
    def ip_key(self) -> str | None:
        """The IP's row, None when the IP is unknown or trusted (not counted per IP)."""
        if not self.ip or address_in_networks(self.ip, settings.THROTTLE_EXEMPT_NETWORKS):
            return None
        return self.key("ip", self.ip)


@dataclass
class Attempt:
    """One attempt between its check and its settlement; settle it exactly once."""

    subject: Subject
    holds_slot: bool
    account_has_failures: bool


def _wait(until: float, now: float) -> int:
    return max(1, math.ceil(until - now))


def _execute(sql: str, params: dict) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _params(subject_key: str, now: float, **extra: object) -> dict:
    return {
        "subject": subject_key,
        "now": now,
        "window_start": now - settings.LOGIN_LOCKOUT_WINDOW_SECONDS,
        "stale": now - STALE_SLOT_SECONDS,
        "level_start": now - LEVEL_MEMORY_SECONDS,
        "threshold": settings.LOGIN_LOCKOUT_THRESHOLD,
        **extra,
    }


def _rows(subject: Subject) -> dict[str, LockoutCounter]:
    keys = [key for key in (subject.account_key, subject.ip_key) if key]
    return {row.subject: row for row in LockoutCounter.objects.filter(subject__in=keys)}


def _refuse_if_locked(subject: Subject, rows: dict[str, LockoutCounter], now: float) -> None:
    ip_row = rows.get(subject.ip_key) if subject.ip_key else None
    if ip_row is not None and ip_row.locked_until > now:
        raise AccountLocked(
            "Too many failed attempts from this address; try again later.",
            extra={"retry_after": _wait(ip_row.locked_until, now)},
        )
    account_row = rows.get(subject.account_key)
    if account_row is not None and account_row.locked_until > now:
        raise AccountLocked(
            "Too many failed attempts; try again later.", extra={"retry_after": _wait(account_row.locked_until, now)}
        )


def _slot_take(subject: Subject, *, row_exists: bool, now: float) -> bool:
    params = _params(subject.account_key, now)
    statements = (_SLOT_TAKE, _SLOT_FIRST) if row_exists else (_SLOT_FIRST, _SLOT_TAKE)
    return any(_execute(sql, params) == 1 for sql in statements)


def attempt_begin(subject: Subject) -> Attempt:
    """Refuse (429) if the IP or the account is locked; otherwise start an attempt (waiting for a slot if need be)."""
    deadline = time.monotonic() + SLOT_WAIT_SECONDS
    delay = 0.005
    while True:
        now = time.time()
        rows = _rows(subject)
        _refuse_if_locked(subject, rows, now)
        account_row = rows.get(subject.account_key)
        if not subject.takes_slots:
            has_failures = account_row is not None and account_row.failures > 0
            return Attempt(subject=subject, holds_slot=False, account_has_failures=has_failures)
        if _slot_take(subject, row_exists=account_row is not None, now=now):
            return Attempt(subject=subject, holds_slot=True, account_has_failures=True)
        if time.monotonic() >= deadline:
            raise AccountLocked("Too many attempts at once; try again shortly.", extra={"retry_after": 1})
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _lock(subject: Subject, *, part: str, key: str, now: float, seconds: int, level: int, threshold: int) -> None:
    """Start a lock unless one is running; the one caller whose UPDATE matches records it."""
    started = _execute(_LOCK, _params(key, now, until=now + seconds, level=level, threshold=threshold))
    if not started:
        return
    metrics.LOCKOUTS.labels(kind=f"{subject.kind}-{part}").inc()
    security_event_record(
        event_type=SecurityEvent.Type.LOCKOUT,
        ip=subject.ip,
        data={"scope": part, "kind": subject.kind, "account": subject.account, "seconds": seconds},
    )


def _failure_count(key: str, now: float, *, slot: bool) -> tuple[int, int, float]:
    with connection.cursor() as cursor:
        cursor.execute(_FAILURE, _params(key, now, slot=slot))
        failures, level, last_locked_at = cursor.fetchone()
    return failures, level, last_locked_at


def attempt_failed(attempt: Attempt) -> None:
    """Count a failure against the account and the IP; the Kth locks, longer with each repeated lockout."""
    subject, now = attempt.subject, time.time()
    failures, level, last_locked_at = _failure_count(subject.account_key, now, slot=attempt.holds_slot)
    if failures >= settings.LOGIN_LOCKOUT_THRESHOLD:
        level = (level if last_locked_at >= now - LEVEL_MEMORY_SECONDS else 0) + 1
        seconds = min(settings.LOGIN_LOCKOUT_SECONDS * 2 ** (level - 1), settings.LOGIN_LOCKOUT_MAX_SECONDS)
        _lock(
            subject,
            part="account",
            key=subject.account_key,
            now=now,
            seconds=seconds,
            level=level,
            threshold=settings.LOGIN_LOCKOUT_THRESHOLD,
        )
    if subject.ip_key:
        failures, level, _ = _failure_count(subject.ip_key, now, slot=False)
        if failures >= settings.LOGIN_IP_THRESHOLD:
            _lock(
                subject,
                part="ip",
                key=subject.ip_key,
                now=now,
                seconds=settings.LOGIN_IP_LOCKOUT_SECONDS,
                level=level,
                threshold=settings.LOGIN_IP_THRESHOLD,
            )


def attempt_succeeded(attempt: Attempt) -> None:
    """Clear the account's failure count and give the slot back; no write when there is nothing to clear."""
    if not (attempt.holds_slot or attempt.account_has_failures):
        return
    params = _params(attempt.subject.account_key, time.time(), slot=attempt.holds_slot, mine=int(attempt.holds_slot))
    if not _execute(_FORGET, params):  # other attempts in flight: clear the count, give the slot back
        _execute(_SUCCESS, params)
        # Whichever concurrent success gives back the last slot also removes the row, so none is left behind.
        _execute(_FORGET, {**params, "mine": 0})


def attempt_step_passed(attempt: Attempt) -> None:
    """The password was right but a second factor follows: give the slot back and keep the failure count.

    Only the whole login's success (the factor's own attempt) clears the count, so knowing the password does
    not reset the count of guessed codes.
    """
    attempt_abandoned(attempt)


def attempt_abandoned(attempt: Attempt) -> None:
    """The check itself broke (not a wrong password): give the slot back without counting anything."""
    if attempt.holds_slot:
        _execute(_SLOT_GIVE_BACK, {"subject": attempt.subject.account_key})


def lockout_counters_prune(*, batch_size: int) -> int:
    """Delete rows with nothing left to remember (no lock, no live failures, level or slot); returns the count."""
    now = time.time()
    dead = LockoutCounter.objects.filter(
        Q(in_flight=0) | Q(in_flight_since__lt=now - STALE_SLOT_SECONDS),
        locked_until__lte=now,
        window_started__lt=now - settings.LOGIN_LOCKOUT_WINDOW_SECONDS,
        last_locked_at__lt=now - LEVEL_MEMORY_SECONDS,
    )
    keys = list(dead.values_list("subject", flat=True)[:batch_size])
    # the conditions are checked again by the DELETE itself, so a row that changed in between stays
    return dead.filter(subject__in=keys).delete()[0] if keys else 0
