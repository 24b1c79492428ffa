"""Deactivating (the soft delete) and reactivating a person, one at a time or in bulk for the monolith import.

Deactivation ends every session at once; both write the audit record and the event and drop the cached views.
The rules: nobody deactivates themselves, and the last active HOD stays active.
"""

from django.db import transaction
from django.utils import timezone

from user_service.exceptions import ApplicationError
from users.cache import user_invalidate
from users.models import CustomUser, EventType, SecurityEvent, SessionEndReason, UserType
from users.services.audit import security_event_record, security_event_row, security_events_record_many
from users.services.auth import sessions_end_for_user
from users.services.outbox import event_enqueue


class PersonChangeRefused(ApplicationError):
    """A change to a person the rules forbid (deactivating oneself or the last active HOD)."""

    default_code = "change_refused"


@transaction.atomic
def user_deactivate(*, user: CustomUser, actor: CustomUser | None = None) -> bool:
    """Soft-delete ``user``: inactive, ``deactivated_at`` set, every session ended at once. False if already inactive.

    An HOD cannot deactivate their own account, and the last active HOD cannot be deactivated.
    """
    if isinstance(actor, CustomUser) and actor.pk == user.pk:
        raise PersonChangeRefused(
            "You cannot deactivate your own account; another head of department can.", code="cannot_deactivate_self"
        )
    if user.user_type == UserType.HOD:
        # Lock every active HOD in one order, so two HODs deactivating each other cannot both succeed.
        hods = list(
            CustomUser.objects.select_for_update()
            .filter(user_type=UserType.HOD, is_active=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if hods == [user.pk]:
            raise PersonChangeRefused(
                "This is the last active head of department; activate or create another one first.",
                code="last_active_hod",
            )
    account = CustomUser.objects.select_for_update().get(pk=user.pk)
    if not account.is_active:
        return False
    account.is_active = False
    account.deactivated_at = timezone.now()
    account.save(update_fields=["is_active", "deactivated_at", "updated_at"])
    sessions_end_for_user(user=account, reason=SessionEndReason.DEACTIVATED)
    event_enqueue(event_type=EventType.USER_DEACTIVATED, user=account)
    security_event_record(event_type=SecurityEvent.Type.USER_DEACTIVATED, user=account, actor=actor)
    user_invalidate(user_id=account.pk)
    user.is_active, user.deactivated_at = False, account.deactivated_at
    return True


@transaction.atomic
def user_reactivate(*, user: CustomUser, actor: CustomUser | None = None) -> bool:
    """Let a deactivated user sign in again (``deactivated_at`` cleared). False if already active."""
    account = CustomUser.objects.select_for_update().get(pk=user.pk)
    if account.is_active:
        return False
    account.is_active = True
    account.deactivated_at = None
    account.save(update_fields=["is_active", "deactivated_at", "updated_at"])
    event_enqueue(event_type=EventType.USER_REACTIVATED, user=account)
    security_event_record(event_type=SecurityEvent.Type.USER_REACTIVATED, user=account, actor=actor)
    user_invalidate(user_id=account.pk)
    user.is_active, user.deactivated_at = True, None
    return True


def users_activity_set_by_import(*, deactivated_ids: list[int], reactivated_ids: list[int]) -> int:
    """Batch form for the monolith import, which writes ``is_active`` itself in bulk (the monolith decides).

    Ends every session of the deactivated, writes the audit records, drops the cached views; returns the number of
    sessions ended. The events come from ``monolith_import.notify`` (only with ``--notify``). The last-HOD rule does
    not apply: the monolith is the source of truth during a migration.
    """
    ended = 0
    for user_id in deactivated_ids:
        ended += len(sessions_end_for_user(user=CustomUser(pk=user_id), reason=SessionEndReason.DEACTIVATED))
    for user_id in (*deactivated_ids, *reactivated_ids):
        user_invalidate(user_id=user_id)
    data = {"via": "monolith_import"}
    kinds = [
        (SecurityEvent.Type.USER_DEACTIVATED, deactivated_ids),
        (SecurityEvent.Type.USER_REACTIVATED, reactivated_ids),
    ]
    security_events_record_many(
        [security_event_row(event_type=kind, user_id=i, data=data) for kind, ids in kinds for i in ids]
    )
    return ended
