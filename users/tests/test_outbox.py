"""The outbox: same-transaction writes, after-commit publish, exactly-once marking, retries, relay, admin."""

import base64
import json
import smtplib
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone
from rest_framework import status

from conftest import TEST_PASSWORD
from users.models import OutboxMessage
from users.services import emails, outbox, outbox_delivery
from users.services.outbox import email_enqueue, event_enqueue
from users.services.outbox_delivery import Delivery, outbox_deliver, outbox_relay, retry_delay
from users.tests.outbox_support import API, broker_at, closed_port, queue_length, queued, wait_for

Status = OutboxMessage.Status


def _make_due(message: OutboxMessage) -> None:
    OutboxMessage.objects.filter(pk=message.pk).update(available_at=timezone.now() - timedelta(seconds=1))


def _published(queue: str) -> list[dict]:
    """The task messages waiting in ``queue`` (kombu's Redis envelope, JSON body)."""
    messages = []
    for item in queued(queue):
        envelope = json.loads(item)
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": args, **({"kwargs": kwargs} if kwargs else {})})
    return messages


class TestEnqueue:
    @pytest.mark.django_db
    def test_rows_belong_to_the_callers_transaction(self, student):
        def failing_change():
            with transaction.atomic():
                email_enqueue(user=student, template="welcome")
                event_enqueue(event_type="user.updated", user=student)
                raise RuntimeError("the change failed")

        with pytest.raises(RuntimeError):
            failing_change()

        assert not OutboxMessage.objects.exists()

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("isolated_broker")
    def test_the_delivery_task_is_published_after_commit_on_its_queue(self, student):
        with transaction.atomic():
            event = event_enqueue(event_type="user.updated", user=student, data={"fields": ["first_name"]})
            mail = email_enqueue(user=student, template="welcome")
            assert queue_length("events") == queue_length("email") == 0  # nothing before commit

        assert _published("events") == [{"task": "users.tasks.outbox_event_task", "args": [str(event.pk)]}]
        assert _published("email") == [{"task": "users.tasks.outbox_email_task", "args": [str(mail.pk)]}]

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("isolated_broker")
    def test_bulk_inserted_rows_get_one_early_relay_after_commit(self, student):
        with transaction.atomic():
            OutboxMessage.objects.bulk_create(
                [OutboxMessage(kind="event", topic="user.created", payload={"user_id": student.pk}) for _ in range(5)]
            )
            outbox.outbox_relay_soon()
            assert queue_length("default") == 0  # nothing before commit

        assert _published("default") == [
            {"task": "users.tasks.outbox_relay_task", "args": [], "kwargs": {"grace_seconds": 0}}
        ]
        assert queue_length("events") == 0  # not one publish per row: the relay takes them

    @pytest.mark.django_db
    def test_the_early_relay_takes_rows_that_were_just_written(self, student, settings, mailoutbox):
        from users.tasks import outbox_relay_task

        settings.OUTBOX_RELAY_GRACE_SECONDS = 10  # the beat relay leaves rows this young to the after-commit path
        OutboxMessage.objects.bulk_create(
            [OutboxMessage(kind="email", topic="welcome", payload={"user_id": student.pk}) for _ in range(3)]
        )
        assert outbox_relay_task() == 0

        assert outbox_relay_task(grace_seconds=0) == 3  # what outbox_relay_soon publishes

        assert not OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).exists()
        assert len(mailoutbox) == 3

    @pytest.mark.django_db
    def test_event_rows_capture_the_user_as_the_change_left_them(self, student):
        message = event_enqueue(event_type="user.updated", user=student, data={"fields": ["last_name"]})

        assert message.kind == OutboxMessage.Kind.EVENT
        assert message.payload["user"]["id"] == student.pk
        assert message.payload["user"]["role"] == "student"
        assert message.payload["data"] == {"fields": ["last_name"]}


class TestDeliver:
    @pytest.mark.django_db
    def test_delivering_the_same_message_twice_sends_it_once(self, student, mailoutbox):
        message = email_enqueue(user=student, template="welcome")

        first = outbox_deliver(message_id=str(message.pk))
        second = outbox_deliver(message_id=str(message.pk))

        assert (first.outcome, second.outcome) == (Delivery.SENT, Delivery.NOT_CLAIMED)
        assert len(mailoutbox) == 1
        sent = mailoutbox[0]
        assert sent.to == [student.email]
        assert sent.extra_headers["X-Message-ID"] == str(message.pk)
        assert str(message.pk) in sent.extra_headers["Message-ID"]
        message.refresh_from_db()
        assert (message.status, message.attempts, message.last_error) == (Status.SENT, 1, "")
        assert message.sent_at is not None

    @pytest.mark.django_db(transaction=True)
    def test_concurrent_deliveries_of_one_message_send_it_once(self, student, monkeypatch):
        message = email_enqueue(user=student, template="welcome")
        sends = []

        def slow_send(msg):
            sends.append(msg.pk)
            time.sleep(0.3)

        monkeypatch.setattr(emails, "email_deliver", slow_send)
        outcomes = []

        def deliver():
            try:
                outcomes.append(outbox_deliver(message_id=str(message.pk)).outcome)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=deliver) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sends == [message.pk]
        assert sorted(outcomes) == sorted([Delivery.SENT] + [Delivery.NOT_CLAIMED] * 5)
        message.refresh_from_db()
        assert message.status == Status.SENT

    @pytest.mark.django_db
    def test_transient_failures_back_off_and_end_failed_after_the_limit(self, student, settings, monkeypatch):
        settings.OUTBOX_MAX_ATTEMPTS = 3
        settings.OUTBOX_RETRY_BACKOFF_SECONDS = 10

        def smtp_down(msg):
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

        monkeypatch.setattr(emails, "email_deliver", smtp_down)
        message = email_enqueue(user=student, template="welcome")

        first = outbox_deliver(message_id=str(message.pk))
        message.refresh_from_db()
        assert first.outcome == Delivery.RETRY
        assert 5 <= first.retry_in <= 10
        assert message.status == Status.PENDING
        assert message.attempts == 1
        assert message.available_at > timezone.now() + timedelta(seconds=4)
        assert "SMTPServerDisconnected" in message.last_error
        # not due yet: nobody takes it
        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.NOT_CLAIMED

        _make_due(message)
        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.RETRY
        _make_due(message)
        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.FAILED

        message.refresh_from_db()
        assert (message.status, message.attempts) == (Status.FAILED, 3)
        assert "Connection unexpectedly closed" in message.last_error
        _make_due(message)
        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.NOT_CLAIMED

    def test_backoff_is_exponential_capped_and_jittered(self, settings):
        settings.OUTBOX_RETRY_BACKOFF_SECONDS = 10
        settings.OUTBOX_RETRY_BACKOFF_MAX_SECONDS = 600

        for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (6, 320), (7, 600), (12, 600)]:
            delays = {retry_delay(attempts) for _ in range(50)}
            assert all(ceiling / 2 <= d <= ceiling for d in delays), attempts
            assert len(delays) > 1  # jittered

    @pytest.mark.django_db
    def test_a_permanent_error_fails_at_once(self, student):
        message = email_enqueue(user=student, template="no_such_template")

        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.FAILED

        message.refresh_from_db()
        assert (message.status, message.attempts) == (Status.FAILED, 1)
        assert "unknown e-mail template" in message.last_error

    @pytest.mark.django_db
    def test_a_claim_leases_the_row_and_counts_the_attempt_before_sending(self, student, settings, mailoutbox):
        settings.OUTBOX_MAX_ATTEMPTS = 2
        settings.OUTBOX_LEASE_SECONDS = 90
        message = email_enqueue(user=student, template="welcome")

        outbox_delivery._claim(str(message.pk))  # a worker took it, then died before sending
        message.refresh_from_db()
        assert (message.status, message.attempts) == (Status.PENDING, 1)
        assert message.available_at > timezone.now() + timedelta(seconds=85)
        # while the lease runs nobody else takes it; the redelivered task is told when to look again
        leased = outbox_deliver(message_id=str(message.pk))
        assert leased.outcome == Delivery.NOT_CLAIMED
        assert 85 < leased.retry_in <= 90

        _make_due(message)  # the lease ran out
        outbox_delivery._claim(str(message.pk))  # and the next worker died too
        _make_due(message)

        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.FAILED
        message.refresh_from_db()
        assert message.status == Status.FAILED
        assert "never finished (worker lost or killed)" in message.last_error
        assert mailoutbox == []

    @pytest.mark.django_db(transaction=True)  # each statement its own transaction, as in a worker
    def test_the_bookkeeping_is_two_statements_prepared_once_that_skip_the_flush_wait(self, student, mailoutbox):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        messages = [email_enqueue(user=student, template="welcome") for _ in range(3)]
        connection.close()  # a new session: nothing prepared on it yet

        with CaptureQueriesContext(connection) as captured:
            outcomes = [outbox_deliver(message_id=str(message.pk)).outcome for message in messages]

        assert outcomes == [Delivery.SENT] * 3
        table = OutboxMessage._meta.db_table
        statements = [query["sql"] for query in captured.captured_queries if table in query["sql"]]
        assert len(statements) == 6  # a claim and an outcome per message (the e-mail also reads its person)
        assert all(sql.endswith("set_config('synchronous_commit', 'off', true)") for sql in statements)
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY statement")
            prepared = [row[0] for row in cursor.fetchall()]
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("on",)  # the setting ended with each statement's transaction
        assert prepared == sorted(set(statements))  # two statements, each prepared once on the connection
        assert len(mailoutbox) == 3

    @pytest.mark.django_db(transaction=True)
    def test_inside_a_transaction_the_bookkeeping_leaves_its_commit_alone(self, student):
        from django.db import connection

        message = email_enqueue(user=student, template="welcome")
        with transaction.atomic():
            claimed = outbox_delivery._claim(str(message.pk))
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                setting = cursor.fetchone()

        assert claimed is not None
        assert setting == ("on",)  # the enclosing transaction still waits for its flush

    @pytest.mark.django_db(transaction=True)
    def test_with_prepared_statements_off_for_a_pooler_nothing_is_prepared(self, student, mailoutbox):
        from django.db import connection

        def prepared() -> int:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_prepared_statements")
                return cursor.fetchone()[0]

        messages = [email_enqueue(user=student, template="welcome") for _ in range(2)]
        connection.close()  # a new session: nothing prepared on it yet
        connection.ensure_connection()
        connection.connection.prepare_threshold = None  # what DB_PREPARED_STATEMENTS=False configures (test below)
        try:
            outcomes = [outbox_deliver(message_id=str(message.pk)).outcome for message in messages]
            count = prepared()
        finally:
            connection.close()  # the next test's session prepares as configured

        assert outcomes == [Delivery.SENT] * 2
        assert count == 0

    @pytest.mark.parametrize(("value", "threshold"), [(None, "5"), ("False", "None"), ("True", "5")])
    def test_db_prepared_statements_sets_the_connection_s_prepare_threshold(self, value, threshold):
        """psycopg prepares nothing on a connection whose threshold is None; Django's own cursors never prepare."""
        import os
        import subprocess
        import sys

        env = {key: val for key, val in os.environ.items() if key != "DB_PREPARED_STATEMENTS"}
        if value is not None:
            env["DB_PREPARED_STATEMENTS"] = value
        code = "from user_service import settings; print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])"
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)

        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == threshold

    @pytest.mark.django_db
    def test_the_portable_orm_path_behaves_the_same(self, student, settings, mailoutbox, monkeypatch):
        monkeypatch.setattr(outbox_delivery, "_postgres", lambda: False)  # as on the embedded SQLite
        settings.OUTBOX_MAX_ATTEMPTS = 2
        sent = email_enqueue(user=student, template="welcome")
        failing = email_enqueue(user=student, template="no_such_template")

        assert outbox_deliver(message_id=str(sent.pk)).outcome == Delivery.SENT
        assert outbox_deliver(message_id=str(sent.pk)).outcome == Delivery.NOT_CLAIMED
        assert outbox_deliver(message_id=str(failing.pk)).outcome == Delivery.FAILED

        assert len(mailoutbox) == 1
        assert OutboxMessage.objects.get(pk=sent.pk).status == Status.SENT
        assert OutboxMessage.objects.get(pk=failing.pk).status == Status.FAILED
        outbox_delivery._claim(str(email_enqueue(user=student, template="welcome").pk))
        leased = OutboxMessage.objects.filter(status=Status.PENDING, attempts=1, available_at__gt=timezone.now())
        assert leased.count() == 1

    @pytest.mark.django_db
    def test_a_sent_or_unknown_message_needs_no_second_look(self, student):
        message = email_enqueue(user=student, template="welcome")
        outbox_deliver(message_id=str(message.pk))

        assert outbox_deliver(message_id=str(message.pk)) == Delivery(Delivery.NOT_CLAIMED)
        assert outbox_deliver(message_id=str(uuid.uuid4())) == Delivery(Delivery.NOT_CLAIMED)

    @pytest.mark.django_db
    def test_a_message_with_nothing_to_send_is_closed_with_the_reason(self, student, mailoutbox):
        student.email_verified = True
        student.save()
        message = email_enqueue(user=student, template="verify_email")

        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.SKIPPED

        message.refresh_from_db()
        assert message.status == Status.SENT
        assert message.last_error == "not sent: the address is already verified"
        assert mailoutbox == []


class TestRelay:
    @pytest.mark.django_db
    def test_fresh_rows_are_left_to_the_after_commit_path(self, student, mailoutbox, settings):
        settings.OUTBOX_RELAY_GRACE_SECONDS = 10
        email_enqueue(user=student, template="welcome")

        assert outbox_relay() == 0
        assert outbox_relay(grace_seconds=0) == 1
        assert len(mailoutbox) == 1
        assert outbox_relay(grace_seconds=0) == 0

    @pytest.mark.django_db
    def test_one_run_works_through_batch_after_batch(self, student, mailoutbox):
        for _ in range(7):
            email_enqueue(user=student, template="welcome")

        assert outbox_relay(grace_seconds=0, batch_size=3) == 7
        assert len(mailoutbox) == 7

    @pytest.mark.django_db(transaction=True)
    def test_two_relays_never_deliver_the_same_row(self, make_user, monkeypatch):
        users = [make_user() for _ in range(4)]
        ids = {str(email_enqueue(user=users[i % 4], template="welcome").pk) for i in range(24)}
        sends: list[str] = []
        lock = threading.Lock()

        def slow_send(msg):
            with lock:
                sends.append(str(msg.pk))
            time.sleep(0.01)

        monkeypatch.setattr(emails, "email_deliver", slow_send)
        counts = []

        def relay():
            try:
                counts.append(outbox_relay(grace_seconds=0, batch_size=10))
                counts.append(outbox_relay(grace_seconds=0, batch_size=10))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=relay) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(sends) == sorted(ids)  # every row exactly once
        assert sum(counts) == len(ids)
        assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.SENT}
        assert set(OutboxMessage.objects.values_list("attempts", flat=True)) == {1}  # one claim per row


class TestBrokerDown:
    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("celery_worker")
    def test_register_succeeds_and_the_relay_delivers_once_the_broker_is_back(self, api_client, mailoutbox, settings):
        settings.OUTBOX_RELAY_GRACE_SECONDS = 0
        body = {"username": "offline", "email": "offline@school.test", "password": "Quiet-river-stones-2024"}

        with broker_at(f"redis://127.0.0.1:{closed_port()}/15"):
            started = time.monotonic()
            response = api_client.post(f"{API}/register/", body, format="json")
            elapsed = time.monotonic() - started

        assert response.status_code == status.HTTP_201_CREATED
        assert elapsed < 1.5  # one short connection attempt, no retries
        rows = list(OutboxMessage.objects.values_list("topic", "status", "attempts"))
        assert sorted(rows) == [
            ("user.created", "pending", 0),
            ("verify_email", "pending", 0),
            ("welcome", "pending", 0),
        ]
        time.sleep(0.3)
        assert mailoutbox == []  # nothing reached the worker

        from users.tasks import outbox_relay_task

        outbox_relay_task.delay()  # what beat does every 30 s

        wait_for(lambda: not OutboxMessage.objects.filter(status=Status.PENDING).exists())
        assert sorted(m.subject for m in mailoutbox) == [
            "Confirm your e-mail address",
            "Welcome to your school account",
        ]
        assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(Status.SENT, 1)}
        assert outbox_relay(grace_seconds=0) == 0
        assert len(mailoutbox) == 2


class TestAdmin:
    @pytest.mark.django_db
    def test_retry_action_requeues_failed_messages_and_publishes_them(
        self, client, hod, student, django_capture_on_commit_callbacks
    ):
        failed = email_enqueue(user=student, template="welcome")
        sent = email_enqueue(user=student, template="welcome")
        OutboxMessage.objects.filter(pk=failed.pk).update(status=Status.FAILED, attempts=8, last_error="SMTP down")
        OutboxMessage.objects.filter(pk=sent.pk).update(status=Status.SENT, attempts=1)
        client.login(username=hod.username, password=TEST_PASSWORD)

        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(
                "/admin/users/outboxmessage/",
                {"action": "retry_failed", "_selected_action": [str(failed.pk), str(sent.pk)]},
            )

        assert response.status_code == status.HTTP_302_FOUND
        failed.refresh_from_db()
        assert (failed.status, failed.attempts, failed.last_error) == (Status.PENDING, 0, "")
        assert OutboxMessage.objects.get(pk=sent.pk).status == Status.SENT
        assert len(callbacks) == 1  # only the requeued row is published

    @pytest.mark.django_db
    def test_hods_list_filter_and_read_messages(self, client, hod, student):
        message = email_enqueue(user=student, template="welcome")
        client.login(username=hod.username, password=TEST_PASSWORD)

        listing = client.get("/admin/users/outboxmessage/?status__exact=pending&kind__exact=email")
        detail = client.get(f"/admin/users/outboxmessage/{message.pk}/change/")

        assert listing.status_code == status.HTTP_200_OK
        assert str(message.pk) in listing.content.decode()
        assert detail.status_code == status.HTTP_200_OK
        assert 'name="topic"' not in detail.content.decode()  # read-only: no input fields
        assert client.get("/admin/users/outboxmessage/add/").status_code == status.HTTP_403_FORBIDDEN

    @pytest.mark.django_db
    def test_staff_cannot_see_the_outbox(self, client, staff):
        staff.is_staff = True
        staff.save()
        client.login(username=staff.username, password=TEST_PASSWORD)

        response = client.get("/admin/users/outboxmessage/")

        assert response.status_code == status.HTTP_302_FOUND

    @pytest.mark.django_db
    def test_search_by_id_topic_or_error(self, client, hod, student):
        message = email_enqueue(user=student, template="welcome")
        client.login(username=hod.username, password=TEST_PASSWORD)

        by_id = client.get(f"/admin/users/outboxmessage/?q={message.pk}")
        by_word = client.get("/admin/users/outboxmessage/?q=welcome")
        nonsense = client.get("/admin/users/outboxmessage/?q=not-a-uuid")

        assert by_id.status_code == by_word.status_code == nonsense.status_code == status.HTTP_200_OK
        assert str(message.pk) in by_id.content.decode()
