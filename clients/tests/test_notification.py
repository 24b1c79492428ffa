"""Tests of NotificationServiceClient against a real loopback HTTP server."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from clients.exceptions import ServiceUnavailable
from clients.notification import BULK_MAX_USERS, NotificationReceipt, NotificationServiceClient


@pytest.fixture
def notifications(make_client) -> NotificationServiceClient:
    return make_client(NotificationServiceClient)


def _recording(received: list, status: int, body: dict):
    def handler(request):
        received.append((request.headers.get("Idempotency-Key"), json.loads(request.data)))
        return Response(json.dumps(body), status, mimetype="application/json")

    return handler


def test_send_notification_posts_the_message_and_returns_a_receipt(server, notifications):
    received = []
    server.expect_request("/api/v1/notifications/", method="POST").respond_with_handler(
        _recording(received, 202, {"id": "n-1", "status": "queued"})
    )

    receipt = notifications.send_notification(5, "Welcome", "Hello there", channel="sms")

    assert receipt == NotificationReceipt(id="n-1", status="queued", recipients=1)
    assert received == [(None, {"user_id": 5, "title": "Welcome", "message": "Hello there", "channel": "sms"})]


def test_send_notification_without_idempotency_key_is_not_retried(server, notifications, clock):
    server.expect_request("/api/v1/notifications/", method="POST").respond_with_data("", status=503)

    with pytest.raises(ServiceUnavailable):
        notifications.send_notification(5, "Welcome", "Hello there")

    assert len(server.log) == 1
    assert clock.sleeps == []


def test_send_notification_with_idempotency_key_is_retried_with_that_key(server, notifications):
    received = []
    server.expect_oneshot_request("/api/v1/notifications/", method="POST").respond_with_handler(
        _recording(received, 503, {})
    )
    server.expect_request("/api/v1/notifications/", method="POST").respond_with_handler(
        _recording(received, 201, {"id": "n-2", "status": "sent"})
    )

    receipt = notifications.send_notification(5, "Welcome", "Hello there", idempotency_key="outbox-42")

    assert receipt.id == "n-2"
    assert [key for key, _ in received] == ["outbox-42", "outbox-42"]


def test_send_bulk_notification_deduplicates_ids(server, notifications):
    received = []
    server.expect_request("/api/v1/notifications/bulk/", method="POST").respond_with_handler(
        _recording(received, 202, {"id": "b-1", "status": "queued", "recipients": 3})
    )

    receipt = notifications.send_bulk_notification([3, 1, 3, 2], "Exam", "Room 4", idempotency_key="exam-9")

    assert receipt == NotificationReceipt(id="b-1", status="queued", recipients=3)
    assert received == [
        ("exam-9", {"user_ids": [3, 1, 2], "title": "Exam", "message": "Room 4", "channel": "email"}),
    ]


@pytest.mark.parametrize("user_ids", [[], list(range(1, BULK_MAX_USERS + 2)), [1, "2"], [1, 0]])
def test_send_bulk_notification_refuses_bad_id_lists_before_sending(server, notifications, user_ids):
    with pytest.raises(ValueError, match="user_ids"):
        notifications.send_bulk_notification(user_ids, "Exam", "Room 4")
    assert len(server.log) == 0


@pytest.mark.parametrize(("title", "message"), [("", "body"), ("title", "   "), ("x" * 201, "body")])
def test_empty_or_oversized_content_is_refused_before_sending(server, notifications, title, message):
    with pytest.raises(ValueError, match="title|message"):
        notifications.send_notification(1, title, message)
    assert len(server.log) == 0
