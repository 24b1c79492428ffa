"""Celery tasks: thin interfaces over the outbox and cleanup services (ids in, idempotent work).

The outbox publishes its tasks by the names it declares (``DELIVERY_TASKS``, ``RELAY_TASK``); the tasks
register under them here. ``UsersConfig.ready`` imports this module, so every process knows them.
"""

import logging

from celery import Task, shared_task
from celery.exceptions import MaxRetriesExceededError
from django.conf import settings
from django.db import InterfaceError, OperationalError

from users.models import OutboxMessage
from users.services import cleanup
from users.services.outbox import DELIVERY_TASKS, RELAY_TASK
from users.services.outbox_delivery import Delivery, outbox_deliver, outbox_relay

logger = logging.getLogger(__name__)

# The database blinked (restart, failover): the whole task is retried with backoff and jitter.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
# A delivery retry is scheduled a little after the row's available_at, so the row is due when it runs.
RETRY_MARGIN_SECONDS = 0.05
# A row someone else was taking at that very moment is looked at again no sooner than this.
MIN_RECHECK_SECONDS = 1.0

_DELIVERY_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 20,
    "ignore_result": True,
    "soft_time_limit": 45,
    "time_limit": 60,
}


def _deliver(task: Task, message_id: str) -> str:
    result = outbox_deliver(message_id=message_id)
    if result.retry_in is None or task.request.is_eager:
        return result.outcome
    # Look again when the row is due: after a failed send (SMTP down, receiver 5xx, ServiceUnavailable)
    # that is its backoff; after a lost worker, the end of its lease. The row is the source of truth and
    # the periodic relay covers a retry that gets lost.
    countdown = max(result.retry_in, MIN_RECHECK_SECONDS if result.outcome == Delivery.NOT_CLAIMED else 0.0)
    limit = settings.OUTBOX_MAX_ATTEMPTS + 4
    try:
        raise task.retry(countdown=countdown + RETRY_MARGIN_SECONDS, max_retries=limit)
    except MaxRetriesExceededError:
        return result.outcome


@shared_task(name=DELIVERY_TASKS[OutboxMessage.Kind.EMAIL], **_DELIVERY_OPTIONS)
def outbox_email_task(self: Task, message_id: str) -> str:
    """Send one outbox e-mail (queue ``email``)."""
    return _deliver(self, message_id)


@shared_task(name=DELIVERY_TASKS[OutboxMessage.Kind.EVENT], **_DELIVERY_OPTIONS)
def outbox_event_task(self: Task, message_id: str) -> str:
    """Deliver one outbox event to its receivers (queue ``events``)."""
    return _deliver(self, message_id)


@shared_task(name=DELIVERY_TASKS[OutboxMessage.Kind.LOGOUT], **_DELIVERY_OPTIONS)
def outbox_logout_task(self: Task, message_id: str) -> str:
    """Post one back-channel logout token to its client (queue ``events``)."""
    return _deliver(self, message_id)


@shared_task(
    name=RELAY_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
    ignore_result=True,
    soft_time_limit=50,
    time_limit=60,
)
def outbox_relay_task(grace_seconds: float | None = None) -> int:
    """Deliver pending messages the after-commit path missed (beat, every 30 s), or rows inserted in bulk (grace 0)."""
    return outbox_relay(grace_seconds=grace_seconds)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
    ignore_result=True,
    soft_time_limit=240,
    time_limit=300,
)
def cleanup_task() -> dict[str, int]:
    """Close expired sessions, flush expired refresh tokens, prune old sent outbox rows (beat, hourly)."""
    counts = cleanup.cleanup_run()
    logger.info("cleanup: %s", counts)
    return counts
