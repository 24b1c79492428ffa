"""The Celery app as configured, and a real worker process killed in the middle of a delivery (acks_late)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from user_service.celery import app
from users.models import OutboxMessage
from users.services import outbox
from users.services.events import verify_webhook_signature
from users.services.outbox import event_enqueue
from users.services.outbox_delivery import Delivery, outbox_deliver
from users.tasks import cleanup_task, outbox_email_task, outbox_event_task, outbox_logout_task, outbox_relay_task
from users.tests.outbox_support import Receiver, broker_key_prefix, wait_for

ROOT = Path(__file__).resolve().parents[2]
SECRET = "worker-test-secret"


class TestConfiguration:
    def test_json_only_late_acks_and_requeue_on_worker_loss(self):
        conf = app.conf

        assert conf.task_serializer == "json"
        assert conf.accept_content == ["json"]
        assert conf.task_acks_late is True
        assert conf.task_reject_on_worker_lost is True
        assert conf.worker_prefetch_multiplier == 1
        assert conf.task_soft_time_limit < conf.task_time_limit
        for task in (outbox_email_task, outbox_event_task, outbox_logout_task, outbox_relay_task, cleanup_task):
            assert task.acks_late is True, task.name
            assert task.reject_on_worker_lost is True, task.name
            assert task.soft_time_limit < task.time_limit, task.name

    def test_deliveries_are_routed_to_their_queues(self):
        router = app.amqp.router

        def queue_of(task) -> str:
            return router.route({}, task.name)["queue"].name

        assert queue_of(outbox_email_task) == "email"
        assert queue_of(outbox_event_task) == "events"
        assert queue_of(outbox_logout_task) == "events"
        assert queue_of(outbox_relay_task) == "default"
        assert queue_of(cleanup_task) == "default"
        assert {q.name for q in app.conf.task_queues} == {"default", "email", "events"}

    def test_the_outbox_publishes_the_tasks_by_the_names_they_register_under(self):
        # The service layer names the tasks; users.tasks registers them (imported by UsersConfig.ready).
        assert {
            "email": outbox_email_task.name,
            "event": outbox_event_task.name,
            "logout": outbox_logout_task.name,
        } == outbox.DELIVERY_TASKS
        assert outbox_relay_task.name == outbox.RELAY_TASK
        assert {*outbox.DELIVERY_TASKS.values(), outbox.RELAY_TASK} <= set(app.tasks)  # registered in this process

    def test_beat_relays_every_30_seconds_and_cleans_up_hourly(self):
        schedule = app.conf.beat_schedule

        assert schedule["outbox-relay"]["task"] == outbox_relay_task.name
        assert schedule["outbox-relay"]["schedule"] == 30.0
        assert schedule["outbox-relay"]["options"]["expires"] < 30
        assert schedule["cleanup"]["task"] == cleanup_task.name
        assert schedule["cleanup"]["schedule"].minute == {17}

    def test_transient_errors_retry_with_exponential_backoff_and_jitter(self):
        from django.db import OperationalError

        assert OperationalError in outbox_email_task.autoretry_for
        assert outbox_email_task.retry_backoff
        assert outbox_email_task.retry_jitter is True

    def test_eager_only_without_redis(self):
        assert django_settings.REDIS_URL  # the test environment has a broker ...
        assert app.conf.task_always_eager is False  # ... so tasks really go through it


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in children.read_text().split()] if children.exists() else []


class _WorkerProcess:
    """``celery -A user_service worker`` (prefork, one child) against this test run's database and broker keys."""

    def __init__(self, tmp_path: Path, *, webhook_url: str) -> None:
        settings_module = tmp_path / "worker_test_settings.py"
        settings_module.write_text(
            "from user_service.settings import *  # noqa\n"
            f"DATABASES['default']['NAME'] = {django_settings.DATABASES['default']['NAME']!r}\n"
            f"EVENT_WEBHOOK_URLS = [{webhook_url!r}]\n"
            f"EVENT_WEBHOOK_SECRET = {SECRET!r}\n"
            # the lease outlasts any send (the webhook timeout), and is short so the test is quick
            "EVENT_WEBHOOK_TIMEOUT_SECONDS = 2\n"
            "OUTBOX_LEASE_SECONDS = 3\n"
            "CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "
            f"'global_keyprefix': {broker_key_prefix()!r}}}\n"
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
            "DJANGO_SETTINGS_MODULE": "worker_test_settings",
            "CELERY_SKIP_CHECKS": "1",
        }
        self.log = tmp_path / "worker.log"
        command = [sys.executable, "-m", "celery", "-A", "user_service", "worker", "-Q", "default,email,events"]
        command += ["-P", "prefork", "-c", "1", "-n", f"killtest-{uuid.uuid4().hex[:8]}@%h", "-l", "INFO"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: "ready" in self.log.read_text() or self.process.poll() is not None, timeout=30)
        assert self.process.poll() is None, self.log.read_text()[-3000:]

    def child_pid(self) -> int:
        (child,) = _children(self.process.pid)
        return child

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class TestWorkerConnections:
    def test_worker_processes_turn_the_per_task_health_check_off(self, monkeypatch):
        from user_service.celery import _no_health_check_per_task

        monkeypatch.setitem(django_settings.DATABASES["default"], "CONN_HEALTH_CHECKS", True)

        _no_health_check_per_task()

        assert django_settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is False

    @pytest.mark.django_db(transaction=True)
    def test_without_it_a_broken_connection_fails_one_attempt_and_is_replaced(self, monkeypatch, student, mailoutbox):
        import psycopg
        from django.db import OperationalError, connection

        from user_service.celery import _close_old_db_connections
        from users.services.outbox import email_enqueue

        monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", False)
        connection.close()  # the setting is read when connecting
        message = email_enqueue(user=student, template="welcome")
        old_pid = connection.cursor().connection.info.backend_pid
        params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
        with psycopg.connect(**params, autocommit=True) as admin:  # as a database restart would
            admin.execute("SELECT pg_terminate_backend(%s)", [old_pid])

        with pytest.raises(OperationalError):  # the attempt fails: the task's autoretry takes it from here
            outbox_deliver(message_id=str(message.pk))
        _close_old_db_connections()  # what runs when the task ends

        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.SENT
        assert connection.cursor().connection.info.backend_pid != old_pid
        assert len(mailoutbox) == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("isolated_broker")
def test_a_worker_killed_mid_delivery_is_replaced_and_the_event_redelivered_once(tmp_path, student):
    receiver = Receiver(hold_first=True)
    worker = _WorkerProcess(tmp_path, webhook_url=receiver.url)
    try:
        with transaction.atomic():
            message = event_enqueue(event_type="user.deactivated", user=student, data={"reason": "graduated"})

        # the worker's child is in the middle of the POST: kill it the hard way
        assert receiver.arrived.wait(20), worker.log.read_text()[-3000:]
        victim = worker.child_pid()
        os.kill(victim, signal.SIGKILL)

        # acks_late + reject_on_worker_lost: the message goes back to the queue and a new child takes it;
        # it finds the row leased by the dead attempt, waits for the lease to run out, and delivers
        wait_for(lambda: len(receiver.requests) >= 2, timeout=30)
        receiver.release.set()
        wait_for(lambda: OutboxMessage.objects.get(pk=message.pk).status == OutboxMessage.Status.SENT, timeout=20)
        assert worker.child_pid() != victim
        log = worker.log.read_text()
        assert "WorkerLostError" in log or "SIGKILL" in log, log[-3000:]
    finally:
        receiver.release.set()
        worker.stop()
        receiver.stop()

    message.refresh_from_db()
    assert message.attempts == 2  # the killed attempt counted too
    first, second = receiver.requests
    assert first.headers["X-Event-ID"] == second.headers["X-Event-ID"] == str(message.pk)  # receivers can dedupe
    assert first.body == second.body
    assert verify_webhook_signature(second.body, second.headers["X-Signature-SHA256"], SECRET)
    # and the outbox never sends it a third time
    time.sleep(0.2)
    assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.NOT_CLAIMED
    assert len(receiver.requests) == 2
