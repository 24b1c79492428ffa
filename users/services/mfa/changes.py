"""What every change or use of a person's factors writes: the audit record, the ``user.mfa_changed`` event, e-mail."""

from typing import Any

from users.models import CustomUser, EventType, SecurityEvent
from users.services.audit import security_event_record
from users.services.outbox import email_enqueue, event_enqueue

# E-mail templates (users/templates/users/email/).
FACTORS_CHANGED_TEMPLATE = "mfa_changed"
RECOVERY_CODE_USED_TEMPLATE = "mfa_recovery_code_used"
RESET_TEMPLATE = "mfa_reset"


class Change:
    """The ``change`` of a ``user.mfa_changed`` event."""

    ENROLLED = "enrolled"
    REMOVED = "removed"
    USED = "used"
    RECOVERY_CODES_GENERATED = "recovery_codes_generated"
    RESET = "reset"


AUDIT_TYPES = {
    Change.ENROLLED: SecurityEvent.Type.MFA_ENROLLED,
    Change.REMOVED: SecurityEvent.Type.MFA_REMOVED,
    Change.USED: SecurityEvent.Type.MFA_USED,
    Change.RECOVERY_CODES_GENERATED: SecurityEvent.Type.RECOVERY_CODES_GENERATED,
    Change.RESET: SecurityEvent.Type.MFA_RESET,
}


def mfa_changed(
    *,
    user: CustomUser,
    change: str,
    method: str,
    actor: CustomUser | None = None,
    ip: str | None = None,
    user_agent: str = "",
    data: dict[str, Any] | None = None,
    email: str | None = None,
) -> None:
    """Record a change (or use) of ``user``'s factors in the current transaction: audit record, event, e-mail.

    ``email``: the template of a notice to the person (they learn of a factor added, removed or reset, and of a
    recovery code used, even when someone else did it).
    """
    details = {"method": method, **(data or {})}
    security_event_record(
        event_type=AUDIT_TYPES[change], user=user, actor=actor, ip=ip, user_agent=user_agent, data=details
    )
    event_enqueue(event_type=EventType.USER_MFA_CHANGED, user=user, data={"change": change, **details})
    if email:
        email_enqueue(user=user, template=email, context={"change": change, **details})
