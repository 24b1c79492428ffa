"""The audit trail: one SecurityEvent row per security-relevant action, and its retention."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from users.models import CustomUser, SecurityEvent


def security_event_record(
    *,
    event_type: str,
    user: CustomUser | None = None,
    actor: CustomUser | None = None,
    ip: str | None = None,
    user_agent: str = "",
    data: dict[str, Any] | None = None,
) -> SecurityEvent:
    """Write an audit record in the current transaction (so it commits or rolls back with the action)."""
    return SecurityEvent.objects.create(
        type=event_type,
        user=user if user is not None and user.pk else None,
        actor=actor if isinstance(actor, CustomUser) and actor.pk else None,
        ip=ip,
        user_agent=user_agent[:512],
        data=data or {},
    )


def security_event_row(
    *,
    event_type: str,
    user_id: int | None,
    actor: CustomUser | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The row ``security_event_record`` writes, as ``{attname: value}``, for the bulk paths (COPY or bulk_create)."""
    return {
        "type": SecurityEvent.Type(event_type).value,
        "user_id": user_id,
        "actor_id": actor.pk if isinstance(actor, CustomUser) and actor.pk else None,
        "ip": None,
        "user_agent": "",
        "data": data or {},
        "created_at": timezone.now(),
    }


def security_events_record_many(rows: list[dict[str, Any]]) -> None:
    """Write rows built by ``security_event_row`` with one statement (the few-at-a-time bulk paths)."""
    SecurityEvent.objects.bulk_create([SecurityEvent(**row) for row in rows])


def security_events_prune(*, batch_size: int = 5000) -> int:
    """Delete records older than ``AUDIT_RETENTION_DAYS``, at most ``batch_size`` per call; returns the count."""
    cutoff = timezone.now() - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    ids = list(SecurityEvent.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:batch_size])
    return SecurityEvent.objects.filter(id__in=ids).delete()[0] if ids else 0
