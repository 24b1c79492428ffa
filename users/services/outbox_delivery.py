"""Delivering outbox messages: claim a row, send it with no transaction open, record the outcome.

Rows are written and their tasks published by ``users.services.outbox``; the Celery tasks and the
periodic relay call ``outbox_deliver`` / ``outbox_relay`` here. Delivery is safe to run any number of
times for the same id, concurrently:

1. claim: one statement takes the row if it is pending and due and nobody else is taking it
   (``SELECT ... FOR UPDATE SKIP LOCKED`` inside an ``UPDATE``), counts the attempt and leases it:
   ``available_at`` moves ``OUTBOX_LEASE_SECONDS`` ahead, so no other deliverer can claim it meanwhile.
   The lease outlasts the task's hard time limit, so a live delivery never overlaps another one.
2. send it, with no transaction open during the network call;
3. record the outcome: ``sent`` (guarded by ``status = 'pending'``, so a row turns ``sent`` exactly
   once), or a retry time with backoff and jitter, or ``failed``.

A worker that dies mid-send leaves the lease to expire; its redelivered task (``acks_late``) waits
for that and takes the row again, as does the relay. The attempt counted by the claim makes a
message that kills its worker every time end ``failed`` instead of looping. The bookkeeping
statements are prepared once per connection (``user_service.db``) and commit asynchronously on
PostgreSQL: a database crash can lose the last few of them, which costs a duplicate delivery, never a
message (the row was written durably by the transaction that caused it).

The message id travels with every delivery (e-mail ``Message-ID``/``X-Message-ID`` headers, event
``event_id``) so receivers can drop the rare duplicate of a send whose commit was lost. A failed
send is retried with exponential backoff and jitter (``available_at`` pushed out) and ends
``failed`` with ``last_error`` after ``OUTBOX_MAX_ATTEMPTS`` attempts.
"""

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from user_service.db import prepared_cursor
from users.models import OutboxMessage
from users.services import emails, events
from users.services.oidc import backchannel
from users.services.outbox import PermanentDeliveryError

logger = logging.getLogger(__name__)

Status = OutboxMessage.Status
ERROR_MAX_CHARS = 2000


@dataclass(frozen=True)
class Delivery:
    """What one call of ``outbox_deliver`` did; ``retry_in``: seconds until the row is due again, if pending."""

    outcome: str  # sent | skipped | retry | failed | not_claimed
    retry_in: float | None = None

    SENT = "sent"
    SKIPPED = "skipped"
    RETRY = "retry"
    FAILED = "failed"
    NOT_CLAIMED = "not_claimed"


def outbox_max_attempts() -> int:
    return settings.OUTBOX_MAX_ATTEMPTS


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential, capped, "equal jitter"."""
    base = settings.OUTBOX_RETRY_BACKOFF_SECONDS
    ceiling = min(settings.OUTBOX_RETRY_BACKOFF_MAX_SECONDS, base * 2 ** max(attempts - 1, 0))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


def _send(message: OutboxMessage) -> str | None:
    """Hand the message to the sender of its kind: why it was deliberately not sent, or None once sent."""
    if message.kind == OutboxMessage.Kind.EMAIL:
        return emails.email_deliver(message)
    if message.kind == OutboxMessage.Kind.LOGOUT:
        return backchannel.backchannel_logout_deliver(message)
    return events.event_deliver(message)


def outbox_lease_seconds() -> float:
    return settings.OUTBOX_LEASE_SECONDS


_TABLE = OutboxMessage._meta.db_table
# A statement that is its own transaction turns that transaction's wait for the WAL flush off (SET LOCAL, from inside
# the statement, so that it stays one statement and can be prepared).
_NO_FLUSH_WAIT = "set_config('synchronous_commit', 'off', true)"
# One conditional UPDATE claims the row: PostgreSQL re-checks the WHERE clause after waiting for a
# concurrent claim's row lock (held for that one statement), so of two claims exactly one gets the row.
_CLAIM_SQL = (
    f"UPDATE {_TABLE} SET attempts = attempts + 1, available_at = %s "  # noqa: S608 - a constant table name
    "WHERE id = %s AND status = 'pending' AND available_at <= %s "
    "RETURNING kind, topic, payload, attempts, created_at"
)


def _postgres() -> bool:
    """PostgreSQL gets single-statement bookkeeping; other databases (the embedded SQLite) the ORM path."""
    return connection.vendor == "postgresql"


def _execute_bookkeeping(sql: str, params: list[Any], *, returning: bool = False) -> tuple | None:
    """Run one statement, prepared on the connection (``user_service.db``), as its own transaction committed without
    waiting for the disk; the first row it returns (``returning``: ``sql`` ends with a RETURNING list). Inside an
    enclosing transaction it is sent as it is, which then commits as it would have."""
    if not connection.in_atomic_block:
        sql += f", {_NO_FLUSH_WAIT}" if returning else f" RETURNING {_NO_FLUSH_WAIT}"
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if returning else None


def _claim(message_id: str) -> OutboxMessage | None:
    """Take a pending, due row nobody else is taking: count the attempt and lease it; None if not taken."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=outbox_lease_seconds())
    if _postgres():
        row = _execute_bookkeeping(_CLAIM_SQL, [lease_until, message_id, now], returning=True)
        if row is None:
            return None
        kind, topic, payload, attempts, created_at = row[:5]
        if isinstance(payload, str):  # Django leaves jsonb undecoded; JSONField decodes it itself
            payload = json.loads(payload)
        return OutboxMessage(
            id=OutboxMessage._meta.pk.to_python(message_id),
            kind=kind,
            topic=topic,
            payload=payload,
            attempts=attempts,
            created_at=created_at,
            status=Status.PENDING,
            available_at=lease_until,
        )
    with transaction.atomic():  # the embedded SQLite serializes writers itself
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, status=Status.PENDING, available_at__lte=now)
            .first()
        )
        if message is not None:
            message.attempts += 1
            message.available_at = lease_until
            message.save(update_fields=["attempts", "available_at"])
        return message


def _record(message: OutboxMessage, **fields: Any) -> None:
    """Write the outcome of an attempt; only a row still pending changes (a row turns sent exactly once).

    The payload is written back (with the receivers that already took the message, ``delivered_to``) unless
    the row is done: a sent row's progress no longer matters, and rewriting the JSON is most of the write.
    """
    if fields.get("status") != Status.SENT:
        fields["payload"] = message.payload
    if not _postgres():
        OutboxMessage.objects.filter(pk=message.pk, status=Status.PENDING).update(**fields)
        return
    assignments = ", ".join(f"{name} = %s" + ("::jsonb" if name == "payload" else "") for name in fields)
    values = [json.dumps(value) if name == "payload" else value for name, value in fields.items()]
    _execute_bookkeeping(
        f"UPDATE {_TABLE} SET {assignments} WHERE id = %s AND status = 'pending'",  # noqa: S608 - column names
        [*values, message.pk],
    )


def _not_claimed(message_id: str) -> Delivery:
    """Nothing to do now; if the row is still pending (leased, or backing off), when to look again."""
    available_at = (
        OutboxMessage.objects.filter(pk=message_id, status=Status.PENDING)
        .values_list("available_at", flat=True)
        .first()
    )
    if available_at is None:
        return Delivery(Delivery.NOT_CLAIMED)
    return Delivery(Delivery.NOT_CLAIMED, retry_in=max((available_at - timezone.now()).total_seconds(), 0.0))


def outbox_deliver(*, message_id: str) -> Delivery:
    """Deliver one message if it is pending and due and nobody else is delivering it; idempotent."""
    message = _claim(message_id)
    if message is None:
        return _not_claimed(message_id)
    max_attempts = outbox_max_attempts()
    if message.attempts > max_attempts:
        # Every earlier attempt died with its worker before recording an outcome (a poison message).
        error = f"gave up after {max_attempts} attempts that never finished (worker lost or killed)"
        logger.error("outbox %s: %s", message.pk, error)
        _record(message, status=Status.FAILED, last_error=error)
        return Delivery(Delivery.FAILED)
    try:
        note = _send(message)
    except PermanentDeliveryError as exc:
        logger.error("outbox %s (%s %s) failed for good: %s", message.pk, message.kind, message.topic, exc)
        _record(message, status=Status.FAILED, last_error=str(exc)[:ERROR_MAX_CHARS])
        return Delivery(Delivery.FAILED)
    except Exception as exc:  # every other failure is worth another attempt
        error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
        if message.attempts >= max_attempts:
            logger.error("outbox %s failed after %s attempts: %s", message.pk, message.attempts, error)
            _record(message, status=Status.FAILED, last_error=error)
            return Delivery(Delivery.FAILED)
        delay = retry_delay(message.attempts)
        logger.warning("outbox %s attempt %s failed (%s); retry in %.1fs", message.pk, message.attempts, error, delay)
        _record(message, available_at=timezone.now() + timedelta(seconds=delay), last_error=error)
        return Delivery(Delivery.RETRY, retry_in=delay)
    if note:
        logger.info("outbox %s (%s %s) not sent: %s", message.pk, message.kind, message.topic, note)
    _record(message, status=Status.SENT, sent_at=timezone.now(), last_error=f"not sent: {note}" if note else "")
    return Delivery(Delivery.SKIPPED if note else Delivery.SENT)


def outbox_relay(
    *, batch_size: int | None = None, grace_seconds: float | None = None, time_budget_seconds: float | None = None
) -> int:
    """Deliver pending messages whose after-commit task never ran (broker down, worker lost); returns how many.

    Only rows due for at least ``OUTBOX_RELAY_GRACE_SECONDS`` are taken, so normal traffic stays on the
    after-commit path. Rows are listed in batches of ``OUTBOX_RELAY_BATCH_SIZE`` (rows being claimed right
    now are skipped: ``SKIP LOCKED``) and each is claimed on its own, so two relays never deliver the same
    row; batches follow each other until none is left or ``time_budget_seconds`` (default
    ``OUTBOX_RELAY_TIME_BUDGET_SECONDS``) is spent.
    """
    batch_size = batch_size or settings.OUTBOX_RELAY_BATCH_SIZE
    if grace_seconds is None:
        grace_seconds = settings.OUTBOX_RELAY_GRACE_SECONDS
    if time_budget_seconds is None:
        time_budget_seconds = settings.OUTBOX_RELAY_TIME_BUDGET_SECONDS
    deadline = time.monotonic() + time_budget_seconds
    done = 0
    while time.monotonic() < deadline:
        cutoff = timezone.now() - timedelta(seconds=grace_seconds)
        with transaction.atomic():
            ids = list(
                OutboxMessage.objects.select_for_update(skip_locked=True)
                .filter(status=Status.PENDING, available_at__lte=cutoff)
                .order_by("available_at")
                .values_list("pk", flat=True)[:batch_size]
            )
        handled = 0
        for message_id in ids:
            if time.monotonic() > deadline:
                break
            if outbox_deliver(message_id=str(message_id)).outcome != Delivery.NOT_CLAIMED:
                handled += 1
        done += handled
        if not handled:
            break
    if done:
        logger.info("outbox relay: %s message(s) handled", done)
    return done
