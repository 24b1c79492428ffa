"""The outbox: e-mails and events written in the same transaction as the change that causes them."""

from typing import Any

from users.models import CustomUser, OutboxMessage


def email_enqueue(*, user: CustomUser, template: str, context: dict[str, Any] | None = None) -> OutboxMessage:
    """Record an e-mail to ``user`` (template name under templates/users/email/) in the current transaction."""
    return OutboxMessage.objects.create(
        kind=OutboxMessage.Kind.EMAIL,
        topic=template,
        payload={"user_id": user.pk, "to": user.email, "context": context or {}},
    )


def event_enqueue(*, event_type: str, user: CustomUser, data: dict[str, Any] | None = None) -> OutboxMessage:
    """Record a user event (``user.created``, ``session.revoked``, ...) in the current transaction."""
    return OutboxMessage.objects.create(
        kind=OutboxMessage.Kind.EVENT,
        topic=event_type,
        payload={"user_id": user.pk, "data": data or {}},
    )
