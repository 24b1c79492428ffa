"""Periodic housekeeping: close expired sessions, flush expired refresh-token records, prune sent outbox rows,
old audit records, lockout counters with nothing left to remember, and spent or expired ``mfa_token`` rows.

Each step touches at most ``CLEANUP_BATCH_SIZE`` rows per run (selected by primary key first, then
updated or deleted by key), so one run never holds locks on a large table for long; a backlog is
worked off over successive runs.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from users.models import OutboxMessage, SessionEndReason, UserSession
from users.services.audit import security_events_prune
from users.services.lockout import lockout_counters_prune
from users.services.mfa import challenges_prune
from users.services.mfa import webauthn as webauthn_ceremonies


def _batch_size(batch_size: int | None) -> int:
    return batch_size or settings.CLEANUP_BATCH_SIZE


def sessions_expire(*, batch_size: int | None = None) -> int:
    """Mark sessions past their expiry as ended (reason ``expired``, ended when they expired)."""
    ids = list(
        UserSession.objects.filter(ended_at__isnull=True, expires_at__lte=timezone.now())
        .order_by("expires_at")
        .values_list("pk", flat=True)[: _batch_size(batch_size)]
    )
    if not ids:
        return 0
    return UserSession.objects.filter(pk__in=ids, ended_at__isnull=True).update(
        ended_at=F("expires_at"), end_reason=SessionEndReason.EXPIRED
    )


def tokens_flush_expired(*, batch_size: int | None = None) -> int:
    """Delete expired refresh-token records; their blacklist rows go with them (cascade)."""
    ids = list(
        OutstandingToken.objects.filter(expires_at__lte=timezone.now())
        .order_by("expires_at")
        .values_list("pk", flat=True)[: _batch_size(batch_size)]
    )
    if not ids:
        return 0
    _, per_model = OutstandingToken.objects.filter(pk__in=ids).delete()
    return per_model.get(OutstandingToken._meta.label, 0)


def outbox_prune(*, batch_size: int | None = None, retention_days: int | None = None) -> int:
    """Delete sent outbox rows older than ``OUTBOX_RETENTION_DAYS``; failed rows stay for the admin."""
    if retention_days is None:
        retention_days = settings.OUTBOX_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=retention_days)
    ids = list(
        OutboxMessage.objects.filter(status=OutboxMessage.Status.SENT, sent_at__lt=cutoff)
        .order_by("sent_at")
        .values_list("pk", flat=True)[: _batch_size(batch_size)]
    )
    if not ids:
        return 0
    _, per_model = OutboxMessage.objects.filter(pk__in=ids).delete()
    return per_model.get(OutboxMessage._meta.label, 0)


def cleanup_run(*, batch_size: int | None = None) -> dict[str, int]:
    """Run every housekeeping step once; returns how many rows each touched."""
    return {
        "sessions_expired": sessions_expire(batch_size=batch_size),
        "tokens_flushed": tokens_flush_expired(batch_size=batch_size),
        "outbox_pruned": outbox_prune(batch_size=batch_size),
        "audit_pruned": security_events_prune(batch_size=_batch_size(batch_size)),
        "lockouts_pruned": lockout_counters_prune(batch_size=_batch_size(batch_size)),
        "mfa_challenges_pruned": challenges_prune(batch_size=_batch_size(batch_size)),
        "webauthn_challenges_pruned": webauthn_ceremonies.challenges_prune(batch_size=_batch_size(batch_size)),
    }
