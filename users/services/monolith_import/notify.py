"""``--notify``: the outbox e-mails and events of the accounts a batch creates or updates, built for one bulk insert.

The rows are the ones ``email_enqueue`` / ``event_enqueue`` write, with the same payloads, so the outbox delivers
them like any other message; they are inserted with the batch's writes, in its transaction (a rolled-back batch
leaves none). New accounts get ``user.created`` and, if active with an address, the ``account_migrated`` e-mail;
updated ones ``user.updated``, plus ``user.deactivated`` or ``user.reactivated`` when ``is_active`` changed and
``user.password_changed`` when the hash did. Rows are built by the outbox's own builders (``event_message_row``,
``email_message_row``), so their payloads are those of every other path.
"""

from typing import Any

from users.models import CustomUser, EventType, OutboxMessage
from users.services.monolith_import.source import EMAIL_SHAPE
from users.services.monolith_import.target import _Plan
from users.services.outbox import email_message_row, event_message_row

MIGRATED_TEMPLATE = "account_migrated"
SOURCE = "monolith_import"
EMAIL, EVENT = OutboxMessage.Kind.EMAIL.value, OutboxMessage.Kind.EVENT.value
BOOKKEEPING_FIELDS = frozenset({"deactivated_at"})  # follows is_active; not named in user.updated


def monolith_import_messages(plans: list[_Plan]) -> list[dict[str, Any]]:
    """The outbox rows (``{attname: value}``, ids included) announcing what ``plans`` write; none if nothing."""
    rows: list[dict[str, Any]] = []
    for plan in plans:
        if plan.new_user is not None:
            user = CustomUser(**plan.new_user)
            data = {"user_type": user.user_type, "source": SOURCE}
            rows.append(event_message_row(event_type=EventType.USER_CREATED, user=user, data=data))
            if user.is_active and EMAIL_SHAPE.fullmatch(user.email):
                rows.append(email_message_row(user=user, template=MIGRATED_TEMPLATE))
        elif plan.outcome == "updated" and plan.current is not None:
            user = CustomUser(**(plan.current | (plan.user_update or {})))  # as the import leaves the account
            data = {"fields": _changed_fields(plan), "source": SOURCE}
            rows.append(event_message_row(event_type=EventType.USER_UPDATED, user=user, data=data))
            if "is_active" in plan.user_fields:
                topic = EventType.USER_REACTIVATED if user.is_active else EventType.USER_DEACTIVATED
                rows.append(event_message_row(event_type=topic, user=user, data={"source": SOURCE}))
            if "password" in plan.user_fields:
                data = {"via": "import", "source": SOURCE}
                rows.append(event_message_row(event_type=EventType.USER_PASSWORD_CHANGED, user=user, data=data))
    return rows


def _changed_fields(plan: _Plan) -> list[str]:
    fields = (plan.user_fields - BOOKKEEPING_FIELDS) | plan.profile_fields
    if plan.new_profile is not None:
        fields.add("profile")
    return sorted(fields)
