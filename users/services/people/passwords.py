"""Setting a password, by every route: the owner's change, a reset link, an HOD in the admin, the monolith import.

The password policy (``AUTH_PASSWORD_VALIDATORS``) is checked here and nowhere else. Whoever sets it, a new
password ends the user's sessions (all of them, or all but the owner's current one) and their logins waiting for a
second step, writes the audit record, queues the ``user.password_changed`` event and the password-changed e-mail,
and drops the cached views of the user, in the transaction of the change.
"""

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import transaction

from users.cache import user_invalidate
from users.models import CustomUser, EventType, SecurityEvent, SessionEndReason
from users.services.audit import security_event_record, security_event_row, security_events_record_many
from users.services.auth import sessions_end_for_user
from users.services.mfa.challenges import challenges_end_for_user
from users.services.outbox import email_enqueue, event_enqueue

PASSWORD_CHANGED_TEMPLATE = "password_changed"  # noqa: S105 - an e-mail template name


class PasswordVia:
    """How a password was set: the ``via`` of its event and audit record."""

    CHANGE = "change"
    RESET = "reset"
    ADMIN = "admin"
    IMPORT = "import"


def password_policy_check(*, password: str, user: CustomUser, field: str = "password") -> None:
    """Refuse a password the policy rejects, with the messages under ``field``."""
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from exc


def _password_set(
    *,
    user: CustomUser,
    password: str | None,
    via: str,
    actor: CustomUser | None = None,
    keep_session_id: str | None = None,
    ip: str | None = None,
    audit_type: str = SecurityEvent.Type.PASSWORD_CHANGED,
    extra_fields: tuple[str, ...] = (),
) -> CustomUser:
    """Store the new password (None: unusable) of a locked ``user`` and write every consequence of it."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password", *extra_fields, "updated_at"])
    sessions_end_for_user(user=user, reason=SessionEndReason.PASSWORD_CHANGED, keep_session_id=keep_session_id)
    challenges_end_for_user(user=user)  # a login waiting for its second step began with the old password
    email_enqueue(user=user, template=PASSWORD_CHANGED_TEMPLATE)
    event_enqueue(event_type=EventType.USER_PASSWORD_CHANGED, user=user, data={"via": via})
    security_event_record(event_type=audit_type, user=user, actor=actor, ip=ip, data={"via": via})
    user_invalidate(user_id=user.pk)
    return user


def password_confirmation_check(*, password: str | None, confirm_password: str) -> None:
    """The repeated password must equal the password (an error keyed ``confirm_password``)."""
    if password != confirm_password:
        raise ValidationError({"confirm_password": ["The two passwords do not match."]})


@transaction.atomic
def password_change(
    *,
    user: CustomUser,
    old_password: str,
    new_password: str,
    confirm_password: str,
    current_session_id: str,
    ip: str | None = None,
) -> CustomUser:
    """The owner changes their password after proving the old one; every other session of theirs ends."""
    user = CustomUser.objects.select_for_update().get(pk=user.pk)
    if not user.check_password(old_password):
        raise ValidationError({"old_password": ["Current password is incorrect."]})
    password_confirmation_check(password=new_password, confirm_password=confirm_password)
    if new_password == old_password:
        raise ValidationError({"new_password": ["The new password must differ from the current one."]})
    password_policy_check(password=new_password, user=user, field="new_password")
    return _password_set(
        user=user, password=new_password, via=PasswordVia.CHANGE, keep_session_id=current_session_id, ip=ip
    )


@transaction.atomic
def password_set_by_reset(*, user: CustomUser, new_password: str, confirm_password: str) -> CustomUser:
    """A reset or invitation link was checked by the caller: set the password; every session ends.

    The link reached the owner of the address, which proves the address as well.
    """
    user = CustomUser.objects.select_for_update().get(pk=user.pk)
    password_confirmation_check(password=new_password, confirm_password=confirm_password)
    password_policy_check(password=new_password, user=user, field="new_password")
    user.email_verified = True
    return _password_set(
        user=user,
        password=new_password,
        via=PasswordVia.RESET,
        audit_type=SecurityEvent.Type.PASSWORD_RESET,
        extra_fields=("email_verified",),
    )


@transaction.atomic
def password_set_by_admin(
    *, user: CustomUser, password: str | None, actor: CustomUser | None, ip: str | None = None
) -> CustomUser:
    """An HOD sets (or, with None, disables) another person's password; every session of that person ends."""
    user = CustomUser.objects.select_for_update().get(pk=user.pk)
    if password is not None:
        password_policy_check(password=password, user=user)
    return _password_set(user=user, password=password, via=PasswordVia.ADMIN, actor=actor, ip=ip)


def passwords_set_by_import(*, user_ids: list[int]) -> int:
    """Batch form for the monolith import, which writes the hashes itself (in bulk, kept as they are).

    Ends every session of those users, writes their audit records and drops their cached views; returns the
    number of sessions ended. Its outbox rows (the event; no e-mail: the monolith, where the password was changed,
    told its owner) come from ``monolith_import.notify`` and only with ``--notify``.
    """
    ended = 0
    for user_id in user_ids:
        ended += len(sessions_end_for_user(user=CustomUser(pk=user_id), reason=SessionEndReason.PASSWORD_CHANGED))
        user_invalidate(user_id=user_id)
    security_events_record_many(
        [
            security_event_row(
                event_type=SecurityEvent.Type.PASSWORD_CHANGED, user_id=user_id, data={"via": PasswordVia.IMPORT}
            )
            for user_id in user_ids
        ]
    )
    return ended
