"""``--notify``: the outbox e-mails and events of the accounts a batch creates or updates, built for one bulk insert.

The rows are the ones ``email_enqueue`` / ``event_enqueue`` write, with the same payloads, so the outbox delivers
them like any other message; they are inserted with the batch's writes, in its transaction (a rolled-back batch
leaves none). New accounts get ``user.created`` and, if active with an address, the ``account_migrated`` e-mail;
updated ones ``user.updated``, plus ``user.deactivated`` or ``user.reactivated`` when ``is_active`` changed.
"""

import uuid
from typing import Any

from users.models import CustomUser, OutboxMessage
from users.selectors import user_public_data
from users.services.monolith_import.source import EMAIL_SHAPE
from users.services.monolith_import.target import _Plan

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
            rows.append(_event("user.created", user, {"user_type": user.user_type, "source": SOURCE}))
            if user.is_active and EMAIL_SHAPE.fullmatch(user.email):
                rows.append(_email(MIGRATED_TEMPLATE, user))
        elif plan.outcome == "updated" and plan.current is not None:
            user = CustomUser(**(plan.current | (plan.user_update or {})))  # as the import leaves the account
            rows.append(_event("user.updated", user, {"fields": _changed_fields(plan), "source": SOURCE}))
            if "is_active" in plan.user_fields:
                topic = "user.reactivated" if user.is_active else "user.deactivated"
                rows.append(_event(topic, user, {"source": SOURCE}))
    return rows


def _changed_fields(plan: _Plan) -> list[str]:
    fields = (plan.user_fields - BOOKKEEPING_FIELDS) | plan.profile_fields
    if plan.new_profile is not None:
        fields.add("profile")
    return sorted(fields)


def _event(event_type: str, user: CustomUser, data: dict[str, Any]) -> dict[str, Any]:
    payload = {"user_id": user.pk, "user": user_public_data(user), "data": data}
    return {"id": uuid.uuid4(), "kind": EVENT, "topic": event_type, "payload": payload}


def _email(template: str, user: CustomUser) -> dict[str, Any]:
    payload = {"user_id": user.pk, "to": user.email, "context": {}}
    return {"id": uuid.uuid4(), "kind": EMAIL, "topic": template, "payload": payload}
