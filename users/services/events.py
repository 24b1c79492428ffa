"""User events for sibling services: signed webhooks and the notification service.

Event body (stable JSON, the same bytes for every receiver and every retry of one event)::

    {"event_id": "<uuid>", "type": "user.created", "occurred_at": "2026-01-31T12:00:00.123456Z",
     "user": {<user JSON>}, "data": {...}}

Webhooks (``EVENT_WEBHOOK_URLS``) get it as a POST with ``X-Event-ID``, ``X-Event-Type``,
``X-Webhook-Timestamp`` (this attempt, Unix seconds) and ``X-Signature-SHA256: sha256=<hex>``,
the HMAC-SHA256 of the raw body with ``EVENT_WEBHOOK_SECRET``. The body holds ``event_id`` and
``occurred_at``, so the signature covers them: a receiver verifies the signature, then drops an
``event_id`` it has already processed (deliveries are at least once). Any 2xx is success; anything
else is retried with backoff. Receivers that already took an event are not sent it again when
another receiver fails.
"""

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from clients.exceptions import ServiceError, ServiceUnavailable
from clients.notification import NotificationServiceClient
from users.models import CustomUser, EventType, OutboxMessage
from users.selectors import user_public_data
from users.services.outbox import PermanentDeliveryError

logger = logging.getLogger(__name__)

EVENT_TYPES = frozenset(EventType.values)  # declared once, in users.models.EventType
SIGNATURE_HEADER = "X-Signature-SHA256"
NOTIFICATION_TARGET = "notification-service"


class EventDeliveryFailed(Exception):
    """At least one receiver did not take the event; the others are remembered and not sent it again."""


def verify_webhook_signature(body: bytes, header: str | None, secret: str) -> bool:
    """True if ``header`` (``sha256=<hex>``) is the HMAC-SHA256 of the raw ``body`` under ``secret``.

    For receivers: pass the request body exactly as received (before any JSON parsing).
    """
    if not header or not secret:
        return False
    scheme, _, received = header.strip().partition("=")
    if scheme.lower() != "sha256" or not received:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.strip().lower())


def webhook_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_body(message: OutboxMessage) -> dict[str, Any]:
    payload = message.payload
    user = payload.get("user")
    if user is None and payload.get("user_id") is not None:  # rows written before the snapshot was kept
        found = CustomUser.objects.filter(pk=payload["user_id"]).first()
        user = user_public_data(found) if found else {"id": payload["user_id"]}
    return {
        "event_id": str(message.pk),
        "type": message.topic,
        "occurred_at": message.created_at.isoformat().replace("+00:00", "Z"),
        "user": user,
        "data": payload.get("data", {}),
    }


def event_serialize(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()


def webhook_urls() -> list[str]:
    urls = settings.EVENT_WEBHOOK_URLS
    if isinstance(urls, str):
        urls = urls.split(",")
    return [url.strip() for url in urls if url and url.strip()]


def _target_key(url: str) -> str:
    # Not the URL itself: it may carry credentials, and the row is visible in the admin.
    return "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]


_sessions: dict[int, requests.Session] = {}
_sessions_lock = threading.Lock()


def _session() -> requests.Session:
    """One pooled session per process (never shared across a fork)."""
    pid = os.getpid()
    with _sessions_lock:
        session = _sessions.get(pid)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies or .netrc from the worker's environment
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=10, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[pid] = session
        return session


def webhook_post(url: str, *, raw: bytes, body: dict[str, Any], secret: str) -> None:
    """POST one serialized event to one receiver, signed; raises EventDeliveryFailed unless it answers 2xx."""
    timeout = settings.EVENT_WEBHOOK_TIMEOUT_SECONDS
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "user-service-events/1",
        "X-Event-ID": body["event_id"],
        "X-Event-Type": body["type"],
        "X-Webhook-Timestamp": str(int(time.time())),
        SIGNATURE_HEADER: webhook_signature(raw, secret),
    }
    response = _session().post(
        url, data=raw, headers=headers, timeout=(min(2.0, timeout), timeout), allow_redirects=False
    )
    response.close()
    if not 200 <= response.status_code < 300:
        raise EventDeliveryFailed(f"webhook answered HTTP {response.status_code}")


def _notify(body: dict[str, Any], raw: bytes, message: OutboxMessage) -> None:
    user_id = (body.get("user") or {}).get("id")
    if not user_id:
        raise PermanentDeliveryError("event has no user id for the notification service")
    NotificationServiceClient.shared().send_notification(
        user_id, body["type"], raw.decode(), channel="event", idempotency_key=f"outbox-{message.pk}"
    )


def event_deliver(message: OutboxMessage) -> str | None:
    """Send one event to every configured receiver that has not taken it yet; None once all have."""
    urls = webhook_urls()
    use_notification = bool(settings.NOTIFICATION_SERVICE_URL)
    if not urls and not use_notification:
        return "no event receivers configured"
    secret = settings.EVENT_WEBHOOK_SECRET
    if urls and not secret:
        raise PermanentDeliveryError("EVENT_WEBHOOK_SECRET is not set: refusing to send unsigned webhooks")
    body = event_body(message)
    raw = event_serialize(body)
    delivered = set(message.payload.get("delivered_to", []))
    errors: list[str] = []
    permanent: list[str] = []
    targets: list[tuple[str, Any]] = [(_target_key(url), url) for url in urls]
    if use_notification:
        targets.append((NOTIFICATION_TARGET, None))
    for key, url in targets:
        if key in delivered:
            continue
        try:
            if url is None:
                _notify(body, raw, message)
            else:
                webhook_post(url, raw=raw, body=body, secret=secret)
        except ServiceError as exc:  # the notification service refused it (4xx): retrying will not help
            permanent.append(f"{key}: {exc}")
        except (EventDeliveryFailed, ServiceUnavailable, requests.RequestException) as exc:
            errors.append(f"{key}: {type(exc).__name__}: {exc}")
        else:
            delivered.add(key)
    message.payload = {**message.payload, "delivered_to": sorted(delivered)}
    if errors:
        raise EventDeliveryFailed("; ".join(errors + permanent))
    if permanent:
        raise PermanentDeliveryError("; ".join(permanent))
    return None
