"""The HOD API's writes of one person: create and update students, staff and HODs with field-named errors; invitations.

They check a whole request at once, then call the owners of each kind of change (``create``, ``update``,
``activation``), which write the side effects.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from users.models import PROFILE_MODELS, CustomUser, ProfileBase, UserType
from users.people_schema import USER_FIELDS
from users.services.outbox import email_enqueue
from users.services.people.activation import PersonChangeRefused, user_deactivate, user_reactivate
from users.services.people.create import INVITATION_TEMPLATE, user_create
from users.services.people.passwords import password_policy_check
from users.services.people.update import person_change
from users.services.people.validation import (
    PROFILE_FIELDS,
    _academic_errors,
    _profile_errors,
    _taken_errors,
)

__all__ = ["INVITATION_TEMPLATE", "PersonChangeRefused", "invitation_resend", "person_create", "person_update"]


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationError(errors)


def person_create(
    *,
    user_type: int,
    user: dict[str, Any],
    profile: dict[str, Any],
    password: str | None = None,
    actor: CustomUser | None = None,
) -> ProfileBase:
    """Create a user of ``user_type`` with its profile; without a password the user gets an invitation e-mail.

    Errors are keyed by field name (user fields and profile fields share one namespace).
    """
    user_type = UserType(int(user_type))
    user = {name: (user.get(name) or "").strip() for name in USER_FIELDS}
    profile = {name: value for name, value in profile.items() if name in PROFILE_FIELDS[user_type]}
    errors = _profile_errors(user_type, profile)
    candidate = CustomUser(user_type=user_type, **user)
    try:
        candidate.clean_fields(exclude=["password"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if password:
        try:
            password_policy_check(password=password, user=candidate)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    errors.update(_taken_errors(user_type=user_type, user=user, profile=profile))
    _raise_if(errors)
    _raise_if(_academic_errors(profile))  # a network call: kept out of the transaction

    try:
        created = user_create(
            user_type=user_type,
            password=password or None,
            profile=profile,
            actor=actor,
            source="api",
            check_password=False,  # checked above, with the other fields
            **user,
        )
    except IntegrityError as exc:  # a concurrent request took a unique value between the check and the insert
        _raise_if(_taken_errors(user_type=user_type, user=user, profile=profile))
        raise ValidationError("A conflicting change was made at the same time; try again.") from exc
    return PROFILE_MODELS[user_type].objects.select_related("user").get(user=created)


def person_update(
    *,
    person: ProfileBase,
    user: dict[str, Any],
    profile: dict[str, Any],
    replace: bool = False,
    actor: CustomUser | None = None,
) -> ProfileBase:
    """Change a person's user and profile fields; ``replace`` (PUT) resets every editable field not given.

    ``user["is_active"]`` deactivates or reactivates (with the rules of ``user_deactivate``).
    """
    user_type = UserType(person.user.user_type)
    model = PROFILE_MODELS[user_type]
    user = dict(user)
    is_active = user.pop("is_active", None)
    profile = {name: value for name, value in profile.items() if name in PROFILE_FIELDS[user_type]}
    if replace:
        for name in ("first_name", "last_name"):
            user.setdefault(name, "")
        defaults = {field.name: field.get_default() for field in model._meta.concrete_fields}
        for name in PROFILE_FIELDS[user_type]:
            profile.setdefault(name, defaults[name])
    with transaction.atomic():
        person_change(user=person.user, user_changes=user, profile_changes=profile, actor=actor)
        if is_active is False:
            user_deactivate(user=person.user, actor=actor)
        elif is_active is True:
            user_reactivate(user=person.user, actor=actor)
    return model.objects.select_related("user").get(pk=person.pk)


@transaction.atomic
def invitation_resend(*, user: CustomUser) -> bool:
    """Queue the set-password invitation again, for an active user who has not set a password yet."""
    if not user.is_active or user.has_usable_password():
        return False
    email_enqueue(user=user, template=INVITATION_TEMPLATE)
    return True
