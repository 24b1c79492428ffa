"""Client of the notification service: send one notification or the same one to many users."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clients.base import ServiceClient, positive_id

BULK_MAX_USERS = 1000
TITLE_MAX_CHARS = 200
MESSAGE_MAX_CHARS = 10_000


@dataclass(frozen=True)
class NotificationReceipt:
    """What the notification service accepted: its id for the notification (or batch) and a status."""

    id: str
    status: str
    recipients: int = 1


class NotificationServiceClient(ServiceClient):
    """Typed calls to the notification service (base URL: setting ``NOTIFICATION_SERVICE_URL``).

    Assumed contract (the service's own is not published yet; the tests pin this one):

    - ``POST /api/v1/notifications/`` ``{"user_id", "title", "message", "channel"}`` → 201/202
      ``{"id": str, "status": str}``.
    - ``POST /api/v1/notifications/bulk/`` ``{"user_ids": [...], "title", "message", "channel"}`` → 201/202
      ``{"id": str, "status": str, "recipients": int}``; at most BULK_MAX_USERS ids per call.
    - Both honour an ``Idempotency-Key`` header: a repeated key returns the first answer and sends nothing again.

    Retry policy: a POST is not idempotent, so by default it is sent exactly once: after a timeout we cannot know
    whether the notification went out, and a blind retry could send it twice. When the caller passes
    ``idempotency_key`` the receiver deduplicates, so the call is retried like a GET (timeouts, 502/503/504).
    Derive the key from something stable across *your* retries too, e.g. ``f"outbox-{message.pk}"`` in an outbox
    relay task, so that a Celery retry of the whole task is deduplicated as well.

    Service token scope: ``notifications:send``.
    """

    service_name = "notification"
    base_url_setting = "NOTIFICATION_SERVICE_URL"
    scopes = ("notifications:send",)

    def send_notification(
        self, user_id: int, title: str, message: str, *, channel: str = "email", idempotency_key: str | None = None
    ) -> NotificationReceipt:
        """Ask the notification service to notify one user; retried only when ``idempotency_key`` is given."""
        body = {"user_id": positive_id(user_id, "user_id"), **_content(title, message, channel)}
        response = self.request("POST", "/api/v1/notifications/", json=body, idempotency_key=idempotency_key)
        data = self.json_of(response)
        return NotificationReceipt(
            id=self.field(response, data, "id", str), status=self.field(response, data, "status", str)
        )

    def send_bulk_notification(
        self,
        user_ids: Sequence[int],
        title: str,
        message: str,
        *,
        channel: str = "email",
        idempotency_key: str | None = None,
    ) -> NotificationReceipt:
        """Notify up to BULK_MAX_USERS users at once (duplicates dropped); retried only with ``idempotency_key``."""
        ids = list(dict.fromkeys(positive_id(user_id, "user_ids[]") for user_id in user_ids))
        if not ids or len(ids) > BULK_MAX_USERS:
            raise ValueError(f"user_ids must hold 1 to {BULK_MAX_USERS} ids, not {len(ids)}.")
        body = {"user_ids": ids, **_content(title, message, channel)}
        response = self.request("POST", "/api/v1/notifications/bulk/", json=body, idempotency_key=idempotency_key)
        data = self.json_of(response)
        return NotificationReceipt(
            id=self.field(response, data, "id", str),
            status=self.field(response, data, "status", str),
            recipients=self.field(response, data, "recipients", int),
        )


def _content(title: str, message: str, channel: str) -> dict[str, str]:
    if not isinstance(title, str) or not title.strip() or len(title) > TITLE_MAX_CHARS:
        raise ValueError(f"title must be a non-empty string of at most {TITLE_MAX_CHARS} characters.")
    if not isinstance(message, str) or not message.strip() or len(message) > MESSAGE_MAX_CHARS:
        raise ValueError(f"message must be a non-empty string of at most {MESSAGE_MAX_CHARS} characters.")
    if not isinstance(channel, str) or not channel:
        raise ValueError("channel must be a non-empty string.")
    return {"title": title, "message": message, "channel": channel}
