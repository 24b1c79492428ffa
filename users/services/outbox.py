"""The outbox: e-mails and events written in the same transaction as the change that causes them.

Life of a message: a service writes an ``OutboxMessage`` row inside its own transaction; once that
transaction commits, a Celery task carrying the row's id is published (``outbox_dispatch``). If the
broker is down the row simply stays ``pending`` and the periodic relay (``outbox_relay``, every 30 s
from beat) delivers it later, so nothing is lost.

Delivery (``outbox_deliver``) is safe to run any number of times for the same id, concurrently:

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
statements commit asynchronously on PostgreSQL: a database crash can lose the last few of them,
which costs a duplicate delivery, never a message (the row was written durably by the transaction
that caused it).

The message id travels with every delivery (e-mail ``Message-ID``/``X-Message-ID`` headers, event
``event_id``) so receivers can drop the rare duplicate of a send whose commit was lost. A failed
send is retried with exponential backoff and jitter (``available_at`` pushed out) and ends
``failed`` with ``last_error`` after ``OUTBOX_MAX_ATTEMPTS`` attempts.
"""

import json
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from users import cache
from users.models import CustomUser, EventType, OutboxMessage
from users.selectors import user_public_data

logger = logging.getLogger(__name__)

Status = OutboxMessage.Status
Kind = OutboxMessage.Kind
ERROR_MAX_CHARS = 2000


class PermanentDeliveryError(Exception):
    """A delivery that retrying cannot fix (unknown template, receiver refused the message for good)."""


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


# --- Writing -----------------------------------------------------------------------------------


def message_enqueue(*, kind: str, topic: str, payload: dict[str, Any]) -> OutboxMessage:
    """Write one outbox row in the current transaction and publish its delivery task after commit."""
    message = OutboxMessage.objects.create(kind=kind, topic=topic, payload=payload)
    transaction.on_commit(partial(outbox_dispatch, message_id=str(message.pk), kind=kind), robust=True)
    return message


def email_message_row(*, user: CustomUser, template: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The outbox row (``{attname: value}``) of an e-mail: what ``email_enqueue`` writes, for bulk inserts."""
    return {
        "id": uuid.uuid4(),
        "kind": Kind.EMAIL.value,
        "topic": template,
        "payload": {"user_id": user.pk, "to": user.email, "context": context or {}},
    }


def event_message_row(*, event_type: EventType, user: CustomUser, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The outbox row of a user event: what ``event_enqueue`` writes, for bulk inserts.

    The user's public JSON is captured now, so the event describes the user as the change left them.
    """
    if event_type not in EventType.values:
        raise ValueError(f"unknown event type {event_type!r}; add it to users.models.EventType")
    return {
        "id": uuid.uuid4(),
        "kind": Kind.EVENT.value,
        "topic": EventType(event_type).value,
        "payload": {"user_id": user.pk, "user": user_public_data(user), "data": data or {}},
    }


def email_enqueue(*, user: CustomUser, template: str, context: dict[str, Any] | None = None) -> OutboxMessage:
    """Record an e-mail to ``user`` (template name under templates/users/email/) in the current transaction."""
    row = email_message_row(user=user, template=template, context=context)
    return message_enqueue(kind=row["kind"], topic=row["topic"], payload=row["payload"])


def event_enqueue(*, event_type: EventType, user: CustomUser, data: dict[str, Any] | None = None) -> OutboxMessage:
    """Record a user event (``EventType``) in the current transaction."""
    row = event_message_row(event_type=event_type, user=user, data=data)
    return message_enqueue(kind=row["kind"], topic=row["topic"], payload=row["payload"])


# --- Publishing --------------------------------------------------------------------------------

_broker_down_until = 0.0
_producers: tuple[int, Any] | None = None
_PUBLISH_ONCE = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


def _producer_pool():
    """Producers for after-commit publishing: short socket timeouts and no connection retry loop.

    A request must not wait on a dead broker (the message is safe in the outbox anyway), unlike the
    app's default pool, which retries its connection with pauses. One pool per process (rebuilt after a fork).
    """
    global _producers  # one pool per process
    if _producers is None or _producers[0] != os.getpid():
        from kombu.pools import ProducerPool

        from user_service.celery import app

        timeout = settings.OUTBOX_DISPATCH_TIMEOUT_SECONDS
        connection_ = app.connection_for_write(
            transport_options={"max_retries": 0, "socket_connect_timeout": timeout, "socket_timeout": timeout}
        )
        limit = app.conf.broker_pool_limit or 10
        _producers = (os.getpid(), ProducerPool(connection_.Pool(limit=limit), limit=limit))
    return _producers[1]


def outbox_dispatch(*, message_id: str, kind: str) -> bool:
    """Publish the delivery task of one message; a broker outage is logged and swallowed (the relay retries).

    After a failed publish, further publishes in this process are skipped for
    ``OUTBOX_DISPATCH_PAUSE_SECONDS``, so only one request per pause pays the (short) connection attempt;
    they are skipped as well while the Redis circuit breaker (``users.cache``) holds the broker's address open.
    """
    global _broker_down_until  # one flag per process
    if time.monotonic() < _broker_down_until:
        return False
    from users.tasks import outbox_task_for

    task = outbox_task_for(kind)
    if cache.redis_breaker_open(task.app.conf.broker_url):  # that Redis just failed a call of this process
        return False
    if task.app.conf.task_always_eager:  # the embedded mode: deliver now, in this process
        try:
            task.apply_async(args=[message_id])
        except Exception:  # a failed delivery must not fail the request that caused it
            logger.exception("outbox %s: delivery failed; the row stays pending", message_id)
        return True
    try:
        with _producer_pool().acquire(block=True, timeout=5) as producer:
            # One reconnection at once (a broker restarted since the last publish), never a wait.
            task.apply_async(args=[message_id], producer=producer, retry=True, retry_policy=_PUBLISH_ONCE)
    except Exception as exc:  # any broker failure leaves the row pending for the relay
        _broker_down_until = time.monotonic() + settings.OUTBOX_DISPATCH_PAUSE_SECONDS
        outbox_dispatch_reset(keep_pause=True)
        logger.warning("outbox %s: broker unavailable (%s); the relay will deliver it", message_id, exc)
        return False
    return True


def outbox_dispatch_reset(*, keep_pause: bool = False) -> None:
    """Drop the publishing connections (and, unless ``keep_pause``, a remembered broker outage)."""
    global _broker_down_until, _producers
    if not keep_pause:
        _broker_down_until = 0.0
    if _producers is not None and _producers[0] == os.getpid():
        _producers[1].force_close_all()
        _producers[1].connections.force_close_all()
    _producers = None


# --- Delivering --------------------------------------------------------------------------------


def _deliverer(kind: str):
    from users.services import emails, events

    return {Kind.EMAIL: emails.email_deliver, Kind.EVENT: events.event_deliver}[kind]


def outbox_lease_seconds() -> float:
    return settings.OUTBOX_LEASE_SECONDS


_TABLE = OutboxMessage._meta.db_table
_ASYNC_COMMIT = "SET LOCAL synchronous_commit TO OFF; "
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


def _execute_bookkeeping(sql: str, params: list[Any]) -> tuple | None:
    """Run one statement as its own transaction, committed without waiting for the disk; its first row."""
    own = not connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute((_ASYNC_COMMIT if own else "") + sql, params)
        if own:
            cursor.nextset()
        return cursor.fetchone() if cursor.description else None


def _claim(message_id: str) -> OutboxMessage | None:
    """Take a pending, due row nobody else is taking: count the attempt and lease it; None if not taken."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=outbox_lease_seconds())
    if _postgres():
        row = _execute_bookkeeping(_CLAIM_SQL, [lease_until, message_id, now])
        if row is None:
            return None
        kind, topic, payload, attempts, created_at = row
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
        note = _deliverer(message.kind)(message)
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


def outbox_relay_soon() -> None:
    """After commit, ask a worker to relay pending rows now (rows inserted in bulk), not at the next beat.

    Without the grace period: the rows were just committed and no after-commit task carries them.
    """

    def publish() -> None:
        from users.tasks import outbox_relay_task

        if cache.redis_breaker_open(outbox_relay_task.app.conf.broker_url):
            logger.warning("broker unavailable; the beat relay will deliver")
            return
        try:
            outbox_relay_task.apply_async(kwargs={"grace_seconds": 0}, retry=False)
        except Exception as exc:  # the beat relay delivers them anyway
            logger.warning("could not publish an early relay (%s); the beat relay will deliver", exc.__class__.__name__)

    transaction.on_commit(publish)


@transaction.atomic
def outbox_retry_failed(*, message_ids: list[str]) -> int:
    """Put failed messages back to pending with a fresh attempt budget and publish them after commit."""
    rows = list(
        OutboxMessage.objects.select_for_update()
        .filter(pk__in=message_ids, status=Status.FAILED)
        .values_list("pk", "kind")
    )
    OutboxMessage.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        status=Status.PENDING, attempts=0, available_at=timezone.now(), last_error=""
    )
    for pk, kind in rows:
        transaction.on_commit(partial(outbox_dispatch, message_id=str(pk), kind=kind), robust=True)
    return len(rows)
