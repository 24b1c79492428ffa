"""One person at a time: create, update, deactivate and reactivate students, staff and HODs; invitations."""

from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from user_service.exceptions import ApplicationError
from users.models import PROFILE_MODELS, CustomUser, ProfileBase, SecurityEvent, SessionEndReason, UserType
from users.services.auth import sessions_end_for_user
from users.services.outbox import email_enqueue, event_enqueue
from users.services.people.validation import (
    PROFILE_FIELDS,
    USER_FIELDS,
    _academic_errors,
    _profile_errors,
    _taken_errors,
)
from users.services.users import user_create

INVITATION_TEMPLATE = "invitation"


class PersonChangeRefused(ApplicationError):
    """A change to a person the rules forbid (deactivating oneself or the last active HOD)."""

    default_code = "change_refused"


def _audit(event_type: str, *, user: CustomUser, actor: CustomUser | None, **data: Any) -> None:
    SecurityEvent.objects.create(type=event_type, user=user, actor=_person_or_none(actor), data=data)


def _person_or_none(actor) -> CustomUser | None:
    return actor if isinstance(actor, CustomUser) else None


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationError(errors)


# --- Create and update --------------------------------------------------------------------------


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
            password_validation.validate_password(password, user=candidate)
        except ValidationError as exc:
            errors["password"] = exc.messages
    errors.update(_taken_errors(user_type=user_type, user=user, profile=profile))
    _raise_if(errors)
    _raise_if(_academic_errors(profile))  # a network call: kept out of the transaction

    try:
        with transaction.atomic():
            created = user_create(user_type=user_type, password=password or None, profile=profile, **user)
            if not password:
                email_enqueue(user=created, template=INVITATION_TEMPLATE)
            event_enqueue(event_type="user.created", user=created, data={"user_type": int(user_type)})
            _audit(SecurityEvent.Type.USER_CREATED, user=created, actor=actor, user_type=int(user_type))
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

    ``user["is_active"]`` deactivates or reactivates (with the same rules as :func:`person_deactivate`).
    """
    user_type = UserType(person.user.user_type)
    model = PROFILE_MODELS[user_type]
    user = dict(user)
    is_active = user.pop("is_active", None)
    user = {name: value.strip() if isinstance(value, str) else value for name, value in user.items()}
    profile = {name: value for name, value in profile.items() if name in PROFILE_FIELDS[user_type]}
    if replace:
        for name in ("first_name", "last_name"):
            user.setdefault(name, "")
        for name in PROFILE_FIELDS[user_type]:
            profile.setdefault(name, model._meta.get_field(name).get_default())
    errors = _profile_errors(user_type, profile)
    errors.update(_taken_errors(user_type=user_type, user=user, profile=profile, exclude_user_id=person.user_id))
    _raise_if(errors)
    _raise_if(_academic_errors(profile, before=person))

    try:
        with transaction.atomic():
            _person_write(person=person, user=user, profile=profile, actor=actor)
            if is_active is False:
                person_deactivate(user=person.user, actor=actor)
            elif is_active is True:
                person_reactivate(user=person.user, actor=actor)
    except IntegrityError as exc:
        _raise_if(_taken_errors(user_type=user_type, user=user, profile=profile, exclude_user_id=person.user_id))
        raise ValidationError("A conflicting change was made at the same time; try again.") from exc
    return model.objects.select_related("user").get(pk=person.pk)


def _person_write(*, person: ProfileBase, user: dict[str, Any], profile: dict[str, Any], actor) -> None:
    account = CustomUser.objects.select_for_update().get(pk=person.user_id)
    changed = [name for name, value in user.items() if getattr(account, name) != value]
    if "email" in changed and user["email"].lower() != account.email.lower():
        account.email_verified = False
    for name in changed:
        setattr(account, name, user[name])
    if changed:
        account.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
        account.save()

    record = type(person).objects.select_for_update().get(pk=person.pk)
    profile_changed = [name for name, value in profile.items() if getattr(record, name) != value]
    for name in profile_changed:
        setattr(record, name, profile[name])
    if profile_changed:
        record.full_clean(validate_unique=False)
        record.save()
    if changed or profile_changed:
        event_enqueue(event_type="user.updated", user=account, data={"fields": sorted(changed + profile_changed)})


# --- Deactivation, reactivation, invitations ----------------------------------------------------


@transaction.atomic
def person_deactivate(*, user: CustomUser, actor: CustomUser | None = None) -> bool:
    """Soft-delete ``user``: inactive, ``deactivated_at`` set, every session ended at once. False if already inactive.

    An HOD cannot deactivate their own account, and the last active HOD cannot be deactivated.
    """
    if actor is not None and actor.pk == user.pk:
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
    event_enqueue(event_type="user.deactivated", user=account)
    _audit(SecurityEvent.Type.USER_DEACTIVATED, user=account, actor=actor)
    user.is_active, user.deactivated_at = False, account.deactivated_at
    return True


@transaction.atomic
def person_reactivate(*, user: CustomUser, actor: CustomUser | None = None) -> bool:
    """Let a deactivated user sign in again (``deactivated_at`` cleared). False if already active."""
    account = CustomUser.objects.select_for_update().get(pk=user.pk)
    if account.is_active:
        return False
    account.is_active = True
    account.deactivated_at = None
    account.save(update_fields=["is_active", "deactivated_at", "updated_at"])
    event_enqueue(event_type="user.reactivated", user=account)
    _audit(SecurityEvent.Type.USER_REACTIVATED, user=account, actor=actor)
    user.is_active, user.deactivated_at = True, None
    return True


@transaction.atomic
def invitation_resend(*, user: CustomUser) -> bool:
    """Queue the set-password invitation again, for an active user who has not set a password yet."""
    if not user.is_active or user.has_usable_password():
        return False
    email_enqueue(user=user, template=INVITATION_TEMPLATE)
    return True


@transaction.atomic
def person_created_in_admin(*, user: CustomUser, actor: CustomUser | None) -> None:
    """The side effects of a user added through the Django admin: event, audit row, invitation if no password."""
    if not user.has_usable_password():
        email_enqueue(user=user, template=INVITATION_TEMPLATE)
    event_enqueue(event_type="user.created", user=user, data={"user_type": int(user.user_type)})
    _audit(SecurityEvent.Type.USER_CREATED, user=user, actor=actor, user_type=int(user.user_type), via="admin")
