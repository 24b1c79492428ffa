"""User events: emitted by the services, signed webhooks (retried until taken, once), the notification service."""

import json

import pytest
from django.db import transaction
from rest_framework import status
from werkzeug import Response

from conftest import TEST_PASSWORD, USER_KEYS
from users.models import OutboxMessage, UserSession
from users.services.events import event_body, event_serialize, verify_webhook_signature, webhook_signature
from users.services.outbox import event_enqueue
from users.services.outbox_delivery import Delivery, outbox_deliver
from users.tests.outbox_support import API, Receiver, wait_for

SECRET = "webhook-test-secret"
EVENT_KEYS = {"event_id", "type", "occurred_at", "user", "data"}


@pytest.fixture
def webhook(settings):
    receiver = Receiver()
    settings.EVENT_WEBHOOK_URLS = [receiver.url]
    settings.EVENT_WEBHOOK_SECRET = SECRET
    settings.NOTIFICATION_SERVICE_URL = ""
    yield receiver
    receiver.stop()


class TestSignature:
    def test_a_receiver_verifies_the_signature_of_the_raw_body(self):
        body = b'{"event_id":"e1","type":"user.created"}'
        header = webhook_signature(body, SECRET)

        assert header.startswith("sha256=")
        assert verify_webhook_signature(body, header, SECRET)
        assert verify_webhook_signature(body, header.upper().replace("SHA256=", "sha256="), SECRET)

    @pytest.mark.parametrize(
        ("body", "header", "secret"),
        [
            (b'{"event_id":"e2"}', None, SECRET),  # body changed
            (b'{"event_id":"e1"}', None, "another-secret"),  # wrong secret
            (b'{"event_id":"e1"}', "", SECRET),
            (b'{"event_id":"e1"}', "sha1=abc", SECRET),
            (b'{"event_id":"e1"}', "sha256=", SECRET),
            (b'{"event_id":"e1"}', None, ""),  # no secret never verifies
        ],
    )
    def test_anything_else_is_refused(self, body, header, secret):
        if header is None:
            header = webhook_signature(b'{"event_id":"e1"}', SECRET)

        assert verify_webhook_signature(body, header, secret) is False


class TestEventsEmitted:
    @pytest.mark.django_db
    def test_registration_emits_user_created(self, api_client):
        body = {"username": "ev", "email": "ev@school.test", "password": "Quiet-river-stones-2024"}
        assert api_client.post(f"{API}/register/", body, format="json").status_code == status.HTTP_201_CREATED

        event = OutboxMessage.objects.get(kind="event")
        assert event.topic == "user.created"
        assert event.payload["data"] == {"source": "registration", "user_type": 3}
        assert set(event.payload["user"]) == USER_KEYS

    @pytest.mark.django_db
    def test_revoking_a_session_emits_session_revoked(self, client_for, student):
        client = client_for(student)
        other = UserSession.objects.filter(user=student).first()
        client_for(student)  # a second session, the one revoked below is the first

        response = client.delete(f"{API}/sessions/{other.pk}/")

        assert response.status_code == status.HTTP_204_NO_CONTENT
        event = OutboxMessage.objects.get(topic="session.revoked")
        assert event.payload["data"] == {"session_id": str(other.pk)}
        assert event.payload["user"]["id"] == student.pk

    @pytest.mark.django_db
    def test_changing_the_password_emits_user_password_changed(self, client_for, student):
        client = client_for(student)

        client.post(
            f"{API}/change-password/",
            {
                "old_password": TEST_PASSWORD,
                "new_password": "Another-long-pass-91",
                "confirm_password": "Another-long-pass-91",
            },
            format="json",
        )

        assert OutboxMessage.objects.get(kind="event").topic == "user.password_changed"
        assert OutboxMessage.objects.get(kind="email").topic == "password_changed"


class TestWebhookDelivery:
    @pytest.mark.django_db
    def test_the_body_is_stable_json_and_the_headers_let_receivers_verify_and_deduplicate(self, webhook, student):
        message = event_enqueue(event_type="user.updated", user=student, data={"fields": ["first_name"]})

        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.SENT

        (request,) = webhook.requests
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Event-ID"] == str(message.pk)
        assert request.headers["X-Event-Type"] == "user.updated"
        assert request.headers["X-Webhook-Timestamp"].isdigit()
        assert verify_webhook_signature(request.body, request.headers["X-Signature-SHA256"], SECRET)
        body = request.json()
        assert set(body) == EVENT_KEYS
        assert body["event_id"] == str(message.pk)
        assert body["type"] == "user.updated"
        assert body["occurred_at"].endswith("Z")
        assert set(body["user"]) == USER_KEYS
        assert body["user"]["id"] == student.pk
        assert body["data"] == {"fields": ["first_name"]}
        assert request.body == event_serialize(event_body(message))  # the same bytes on every retry

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("celery_worker", "fast_retries")
    def test_a_500_is_retried_by_the_worker_and_the_event_is_delivered_once(self, settings, httpserver, student):
        settings.EVENT_WEBHOOK_URLS = [httpserver.url_for("/hooks/users")]
        settings.EVENT_WEBHOOK_SECRET = SECRET
        httpserver.expect_ordered_request("/hooks/users", method="POST").respond_with_data("boom", status=500)
        httpserver.expect_ordered_request("/hooks/users", method="POST").respond_with_data("ok", status=200)

        with transaction.atomic():
            message = event_enqueue(event_type="user.deactivated", user=student, data={"reason": "left"})

        wait_for(lambda: OutboxMessage.objects.get(pk=message.pk).status == OutboxMessage.Status.SENT)
        message.refresh_from_db()
        assert message.attempts == 2
        assert len(httpserver.log) == 2
        event_ids = set()
        for request, _ in httpserver.log:
            event_ids.add(request.headers["X-Event-ID"])
            assert verify_webhook_signature(request.get_data(), request.headers["X-Signature-SHA256"], SECRET)
        assert event_ids == {str(message.pk)}
        assert [response.status_code for _, response in httpserver.log] == [500, 200]
        # delivering again (a duplicate task, a relay) sends nothing more
        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.NOT_CLAIMED
        assert len(httpserver.log) == 2

    @pytest.mark.django_db
    def test_a_receiver_that_took_the_event_is_not_sent_it_again(self, settings, webhook, student, httpserver):
        httpserver.expect_request("/down", method="POST").respond_with_data("", status=503)
        settings.EVENT_WEBHOOK_URLS = [webhook.url, httpserver.url_for("/down")]
        message = event_enqueue(event_type="user.reactivated", user=student)

        first = outbox_deliver(message_id=str(message.pk))
        OutboxMessage.objects.filter(pk=message.pk).update(available_at=message.created_at)
        second = outbox_deliver(message_id=str(message.pk))

        assert (first.outcome, second.outcome) == (Delivery.RETRY, Delivery.RETRY)
        assert len(webhook.requests) == 1
        assert len(httpserver.log) == 2
        message.refresh_from_db()
        assert "HTTP 503" in message.last_error

    @pytest.mark.django_db
    def test_urls_without_a_secret_are_refused_rather_than_sent_unsigned(self, settings, webhook, student):
        settings.EVENT_WEBHOOK_SECRET = ""
        message = event_enqueue(event_type="user.updated", user=student)

        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.FAILED

        assert webhook.requests == []
        assert "EVENT_WEBHOOK_SECRET" in OutboxMessage.objects.get(pk=message.pk).last_error

    @pytest.mark.django_db
    def test_with_no_receiver_configured_events_are_closed(self, settings, student):
        settings.EVENT_WEBHOOK_URLS = []
        settings.NOTIFICATION_SERVICE_URL = ""
        message = event_enqueue(event_type="user.updated", user=student)

        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.SKIPPED


class TestNotificationService:
    @pytest.fixture
    def notification_service(self, settings, httpserver):
        from clients.notification import NotificationServiceClient

        settings.EVENT_WEBHOOK_URLS = []
        settings.NOTIFICATION_SERVICE_URL = httpserver.url_for("/").rstrip("/")
        NotificationServiceClient.reset_shared()
        yield httpserver
        NotificationServiceClient.reset_shared()

    @pytest.mark.django_db
    def test_events_go_through_the_client_with_the_message_id_as_idempotency_key(self, notification_service, student):
        received = []

        def handler(request):
            received.append(
                (request.headers.get("Idempotency-Key"), request.headers.get("Authorization"), request.json)
            )
            return Response(json.dumps({"id": "n-1", "status": "queued"}), 202, mimetype="application/json")

        notification_service.expect_request("/api/v1/notifications/", method="POST").respond_with_handler(handler)
        message = event_enqueue(event_type="session.revoked", user=student, data={"session_id": "s-1"})

        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.SENT

        ((key, authorization, body),) = received
        assert key == f"outbox-{message.pk}"
        assert authorization.startswith("Bearer ")
        assert body["user_id"] == student.pk
        assert body["title"] == "session.revoked"
        assert body["channel"] == "event"
        assert json.loads(body["message"])["event_id"] == str(message.pk)

    @pytest.mark.django_db
    def test_a_refusal_fails_the_message_without_retrying(self, notification_service, student):
        notification_service.expect_request("/api/v1/notifications/", method="POST").respond_with_data(
            '{"detail": "unknown user"}', status=400, content_type="application/json"
        )
        message = event_enqueue(event_type="user.updated", user=student)

        assert outbox_deliver(message_id=str(message.pk)).outcome == Delivery.FAILED
        assert "HTTP 400" in OutboxMessage.objects.get(pk=message.pk).last_error
