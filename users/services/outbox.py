"""The outbox: e-mails and events written in the same transaction as the change that causes them.

Life of a message: a service writes an ``OutboxMessage`` row inside its own transaction; once that
transaction commits, a Celery task carrying the row's id is published (``outbox_dispatch``). If the
broker is down the row simply stays ``pending`` and the periodic relay (``outbox_relay``, every 30 s
from beat) delivers it later, so nothing is lost. Claiming, sending and recording the outcome are
``users.services.outbox_delivery``'s; it calls the e-mail and event senders, which call back here only
to write rows.

The tasks are published by name (``DELIVERY_TASKS``, ``RELAY_TASK``): ``users/tasks.py`` registers
them under those names, so this service never imports the interfaces that run it.
"""

import logging
import os
import time
import uuid
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from user_service import celery_app
from users import cache
from users.models import CustomUser, EventType, OutboxMessage
from users.selectors import user_public_data

logger = logging.getLogger(__name__)

Status = OutboxMessage.Status
Kind = OutboxMessage.Kind
# The Celery task that carries each kind of message, and the one that relays missed rows.
DELIVERY_TASKS = {
    Kind.EMAIL: "users.tasks.outbox_email_task",
    Kind.EVENT: "users.tasks.outbox_event_task",
    Kind.LOGOUT: "users.tasks.outbox_logout_task",
}
RELAY_TASK = "users.tasks.outbox_relay_task"


class PermanentDeliveryError(Exception):
    """A delivery that retrying cannot fix (unknown template, receiver refused the message for good)."""


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

        timeout = settings.OUTBOX_DISPATCH_TIMEOUT_SECONDS
        connection_ = celery_app.connection_for_write(
            transport_options={"max_retries": 0, "socket_connect_timeout": timeout, "socket_timeout": timeout}
        )
        limit = celery_app.conf.broker_pool_limit or 10
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
    task = celery_app.signature(DELIVERY_TASKS[Kind(kind)], args=[message_id])
    if cache.redis_breaker_open(celery_app.conf.broker_url):  # that Redis just failed a call of this process
        return False
    if celery_app.conf.task_always_eager:  # the embedded mode: deliver now, in this process
        try:
            task.apply_async()
        except Exception:  # a failed delivery must not fail the request that caused it
            logger.exception("outbox %s: delivery failed; the row stays pending", message_id)
        return True
    try:
        with _producer_pool().acquire(block=True, timeout=5) as producer:
            # One reconnection at once (a broker restarted since the last publish), never a wait.
            task.apply_async(producer=producer, retry=True, retry_policy=_PUBLISH_ONCE)
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


def outbox_relay_soon() -> None:
    """After commit, ask a worker to relay pending rows now (rows inserted in bulk), not at the next beat.

    Without the grace period: the rows were just committed and no after-commit task carries them.
    """

    def publish() -> None:
        if cache.redis_breaker_open(celery_app.conf.broker_url):
            logger.warning("broker unavailable; the beat relay will deliver")
            return
        try:
            celery_app.signature(RELAY_TASK, kwargs={"grace_seconds": 0}).apply_async(retry=False)
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
