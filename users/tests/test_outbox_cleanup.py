"""Periodic cleanup: expired sessions closed, expired refresh-token records flushed, old sent outbox rows pruned."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from users.models import (
    LockoutCounter,
    MfaChallenge,
    OutboxMessage,
    SecurityEvent,
    SessionEndReason,
    UserSession,
    WebAuthnChallenge,
)
from users.services.cleanup import cleanup_run, outbox_prune, sessions_expire, tokens_flush_expired
from users.tasks import cleanup_task

pytestmark = pytest.mark.django_db


def _session(user, *, expires_in: timedelta, ended: bool = False) -> UserSession:
    now = timezone.now()
    return UserSession.objects.create(
        user=user, expires_at=now + expires_in, ended_at=now if ended else None, end_reason="logout" if ended else ""
    )


def _token(user, *, expires_in: timedelta, blacklisted: bool = False) -> OutstandingToken:
    token = OutstandingToken.objects.create(
        user=user, jti=uuid.uuid4().hex, token="", created_at=timezone.now(), expires_at=timezone.now() + expires_in
    )
    if blacklisted:
        BlacklistedToken.objects.create(token=token)
    return token


def _outbox(*, status: str, sent_days_ago: float | None) -> OutboxMessage:
    sent_at = None if sent_days_ago is None else timezone.now() - timedelta(days=sent_days_ago)
    return OutboxMessage.objects.create(kind="event", topic="user.updated", status=status, sent_at=sent_at)


def test_expired_sessions_are_closed_in_bounded_batches(student):
    expired = [_session(student, expires_in=timedelta(hours=-h)) for h in (3, 2, 1)]
    alive = _session(student, expires_in=timedelta(hours=1))
    logged_out = _session(student, expires_in=timedelta(hours=-5), ended=True)

    assert sessions_expire(batch_size=2) == 2
    assert sessions_expire(batch_size=2) == 1
    assert sessions_expire(batch_size=2) == 0

    for session in expired:
        session.refresh_from_db()
        assert session.end_reason == SessionEndReason.EXPIRED
        assert session.ended_at == session.expires_at  # ended when it expired, not when we noticed
    alive.refresh_from_db()
    logged_out.refresh_from_db()
    assert alive.ended_at is None
    assert logged_out.end_reason == "logout"


def test_expired_refresh_token_records_are_flushed_with_their_blacklist_rows(student):
    old = [_token(student, expires_in=timedelta(days=-1), blacklisted=True) for _ in range(3)]
    current = _token(student, expires_in=timedelta(days=1), blacklisted=True)

    assert tokens_flush_expired(batch_size=2) == 2
    assert tokens_flush_expired(batch_size=2) == 1
    assert tokens_flush_expired(batch_size=2) == 0

    assert not OutstandingToken.objects.filter(pk__in=[t.pk for t in old]).exists()
    assert list(BlacklistedToken.objects.values_list("token_id", flat=True)) == [current.pk]


def test_only_old_sent_outbox_rows_are_pruned(settings):
    settings.OUTBOX_RETENTION_DAYS = 14
    old_sent = [_outbox(status="sent", sent_days_ago=20) for _ in range(3)]
    recent = _outbox(status="sent", sent_days_ago=2)
    old_failed = _outbox(status="failed", sent_days_ago=None)
    OutboxMessage.objects.filter(pk=old_failed.pk).update(created_at=timezone.now() - timedelta(days=60))
    pending = _outbox(status="pending", sent_days_ago=None)

    assert outbox_prune(batch_size=2) == 2
    assert outbox_prune(batch_size=2) == 1
    assert outbox_prune(batch_size=2) == 0

    assert not OutboxMessage.objects.filter(pk__in=[m.pk for m in old_sent]).exists()
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {recent.pk, old_failed.pk, pending.pk}


def test_the_cleanup_task_runs_every_step(student, settings):
    settings.CLEANUP_BATCH_SIZE = 5000
    _session(student, expires_in=timedelta(minutes=-1))
    _token(student, expires_in=timedelta(minutes=-1))
    _outbox(status="sent", sent_days_ago=30)
    old_event = SecurityEvent.objects.create(type="logout", user=student)
    SecurityEvent.objects.filter(pk=old_event.pk).update(created_at=timezone.now() - timedelta(days=400))
    LockoutCounter.objects.create(subject="login:account:forgotten", failures=2, window_started=1.0)
    MfaChallenge.objects.create(
        token_hash="0" * 64, user=student, purpose="factor", channel="api", expires_at=timezone.now()
    )
    WebAuthnChallenge.objects.create(challenge_hash="0" * 64, purpose="passwordless", expires_at=timezone.now())

    expected = {
        **{"sessions_expired": 1, "tokens_flushed": 1, "outbox_pruned": 1, "audit_pruned": 1, "lockouts_pruned": 1},
        "mfa_challenges_pruned": 1,
        "webauthn_challenges_pruned": 1,
    }
    assert cleanup_task.apply().get() == expected
    assert cleanup_run() == dict.fromkeys(expected, 0)
