"""Fixtures of the users app's tests that need a broker: an isolated one, and a real Celery worker on it."""

from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections

from user_service.celery import app as celery_app
from users.tests.outbox_support import broker_at, purge_queues


def _close_db_connections(**kwargs: Any) -> None:
    # The worker thread's connections would otherwise outlive the test and block the database flush.
    connections.close_all()


@pytest.fixture
def isolated_broker(transactional_db) -> Iterator[None]:
    with broker_at():
        purge_queues()
        yield
        purge_queues()


@pytest.fixture
def celery_worker(isolated_broker) -> Iterator[object]:
    """A real Celery worker (solo pool) in a thread, consuming default, email and events from Redis."""
    task_postrun.connect(_close_db_connections, weak=False)
    try:
        with start_worker(
            celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=20
        ) as worker:
            yield worker
    finally:
        task_postrun.disconnect(_close_db_connections)


@pytest.fixture
def fast_retries(settings):
    settings.OUTBOX_RETRY_BACKOFF_SECONDS = 0.2
    settings.OUTBOX_RETRY_BACKOFF_MAX_SECONDS = 0.5
    settings.OUTBOX_MAX_ATTEMPTS = 4
    return settings
