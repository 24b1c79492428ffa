"""Celery application: `celery -A user_service worker -Q default,email,events` and `celery -A user_service beat`.

Broker URL, eager mode (the embedded default only), serializers, ``acks_late``,
``reject_on_worker_lost``, prefetch and the global time limits come from the ``CELERY_*`` Django
settings. Queues, routing, the beat schedule and publishing behaviour live here; the delivery tasks
also declare their own acks/retry/time-limit policy (users/tasks.py).
"""

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import celeryd_init, task_postrun, task_prerun
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "user_service.settings")

QUEUES = ("default", "email", "events")
OUTBOX_RELAY_SECONDS = 30.0

app = Celery("user_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES),
    task_default_queue="default",
    task_default_exchange="default",
    task_default_routing_key="default",
    task_create_missing_queues=False,
    task_routes={
        "users.tasks.outbox_email_task": {"queue": "email", "routing_key": "email"},
        "users.tasks.outbox_event_task": {"queue": "events", "routing_key": "events"},
        "users.tasks.outbox_logout_task": {"queue": "events", "routing_key": "events"},
        "users.tasks.*": {"queue": "default", "routing_key": "default"},
    },
    # No result backend: tasks record their outcome in the database (outbox rows).
    task_ignore_result=True,
    task_store_errors_even_if_ignored=False,
    # A task killed by its time limit is acknowledged (not redelivered forever); its outbox row keeps
    # the attempt count, and the relay takes it again when its lease runs out.
    task_acks_on_failure_or_timeout=True,
    # Publishing retries briefly; the after-commit dispatch (users/services/outbox.py) never waits.
    task_publish_retry=True,
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.4, "interval_max": 1.0},
    broker_connection_retry_on_startup=True,
    # When the broker connection drops, running acks_late tasks are cancelled (they are redelivered).
    worker_cancel_long_running_tasks_on_connection_loss=True,
    worker_hijack_root_logger=False,  # Django's LOGGING applies to the worker too
    # Celery's Django fixup would close the database connection around every task (a new PostgreSQL
    # connection per task); _close_old_db_connections below keeps Django's own rules instead.
    CELERY_DB_REUSE_MAX=1_000_000_000,
    worker_send_task_events=False,
    beat_schedule={
        "outbox-relay": {
            "task": "users.tasks.outbox_relay_task",
            "schedule": OUTBOX_RELAY_SECONDS,
            # A run that waited longer than its interval is superseded by the next one.
            "options": {"queue": "default", "expires": OUTBOX_RELAY_SECONDS - 5},
        },
        "cleanup": {
            "task": "users.tasks.cleanup_task",
            "schedule": crontab(minute=17),
            "options": {"queue": "default", "expires": 50 * 60},
        },
    },
)
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_db_connections(sender=None, **kwargs) -> None:
    """What Django does around every request: drop connections that failed or outlived CONN_MAX_AGE."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # an eager task runs inside the caller's request, which owns the connection
    from django.db import close_old_connections

    close_old_connections()


@celeryd_init.connect
def _no_health_check_per_task(**kwargs) -> None:
    """`celery worker` processes skip Django's connection health check (a ``SELECT 1`` before each task's
    first query, because _close_old_db_connections starts every task as Django starts a request).

    A worker can afford what a request cannot: if a database restart broke the connection, the task's first
    query fails, the task is retried (every task here retries on OperationalError and InterfaceError) and
    the broken connection is closed when the task ends. The check was a tenth of an outbox delivery's cost.
    """
    from django.conf import settings

    for database in settings.DATABASES.values():
        database["CONN_HEALTH_CHECKS"] = False
