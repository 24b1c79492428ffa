"""Changing a person's user fields, e-mail address and role profile, whoever asks (the person, an HOD, the admin).

One request may change several at once: ``person_change`` checks them all (field-named errors, the same rules for
every entry point), writes them in one transaction and announces them with one ``user.updated`` event. A new e-mail
address must be confirmed (``email_verified`` drops, a verification link goes to it); a change of admin rights
(``is_staff``, ``is_superuser``) is audited. ``user_fields_change``, ``user_email_change`` and ``profile_change``
are the single-kind forms.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from users.cache import user_invalidate
from users.models import PROFILE_MODELS, CustomUser, EventType, ProfileBase, SecurityEvent, UserType
from users.services.audit import security_event_record
from users.services.outbox import email_enqueue, event_enqueue
from users.services.people.validation import _academic_errors, _profile_errors, _taken_errors

VERIFY_EMAIL_TEMPLATE = "verify_email"
# What the dedicated owners change instead: activity (activation), password (passwords), role (fixed at creation).
NOT_CHANGED_HERE = frozenset({"is_active", "deactivated_at", "password", "user_type", "id", "pk"})
PROFILE_NOT_CHANGED_HERE = frozenset({"id", "user", "created_at", "updated_at"})
ADMIN_RIGHTS_FIELDS = frozenset({"is_staff", "is_superuser"})
_USER_FIELD_NAMES = frozenset(f.name for f in CustomUser._meta.concrete_fields)


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationError(errors)


def user_changes_check(*, user: CustomUser, changes: dict[str, Any]) -> dict[str, list[str]]:
    """Field-named errors for changes to the user row: unknown or not-here fields, model rules, taken identity.

    Strings are stripped in place.
    """
    errors: dict[str, list[str]] = {}
    for name in sorted(set(changes) - (_USER_FIELD_NAMES - NOT_CHANGED_HERE)):
        errors[name] = ["This field cannot be changed here."]
    for name, value in changes.items():
        if isinstance(value, str):
            changes[name] = value.strip()
    if errors:
        return errors
    candidate = CustomUser(**{f.attname: getattr(user, f.attname) for f in CustomUser._meta.concrete_fields})
    for name, value in changes.items():
        setattr(candidate, name, value)
    try:
        candidate.clean_fields(exclude=["password"])
    except ValidationError as exc:
        errors.update({name: messages for name, messages in exc.message_dict.items() if name in changes})
    identity: dict[str, Any] = {name: changes[name] for name in ("username", "email") if name in changes}
    errors.update(_taken_errors(user_type=user.user_type, user=identity, profile={}, exclude_user_id=user.pk))
    return errors


def profile_changes_check(
    *, user_type: int, user_id: int | None, changes: dict[str, Any], before: ProfileBase | None = None
) -> dict[str, list[str]]:
    """Field-named errors for changes to a role profile: phone numbers, dates, unique school ids, academic ids.

    The same rules as the API's create and the roster import; values are normalised in place. Which fields an entry
    point offers is its own choice (the API: ``PROFILE_FIELDS``; the admin adds the picture). The academic ids are
    checked with the academic service (a network call): run this before opening a transaction.
    """
    model = PROFILE_MODELS[user_type]
    allowed = {f.name for f in model._meta.concrete_fields if f.editable} - PROFILE_NOT_CHANGED_HERE
    errors = {name: ["This field cannot be changed here."] for name in sorted(set(changes) - allowed)}
    if errors:
        return errors
    errors = _profile_errors(user_type, changes)
    errors.update(_taken_errors(user_type=user_type, user={}, profile=changes, exclude_user_id=user_id))
    if not errors:
        errors.update(_academic_errors(changes, before=before))
    return errors


def person_change(
    *,
    user: CustomUser,
    user_changes: dict[str, Any] | None = None,
    profile_changes: dict[str, Any] | None = None,
    actor: CustomUser | None = None,
) -> list[str]:
    """Change user fields and profile fields of one person; returns the names of the fields that changed.

    Raises ``ValidationError`` (field-named; profile fields share the user fields' namespace) and writes nothing
    if any change is refused.
    """
    user_changes, profile_changes = dict(user_changes or {}), dict(profile_changes or {})
    user_type = UserType(user.user_type)
    before = PROFILE_MODELS[user_type].objects.filter(user_id=user.pk).first()
    errors = user_changes_check(user=user, changes=user_changes)
    errors.update(profile_changes_check(user_type=user_type, user_id=user.pk, changes=profile_changes, before=before))
    _raise_if(errors)
    try:
        with transaction.atomic():
            changed = _person_write(user=user, user_changes=user_changes, profile_changes=profile_changes, actor=actor)
    except IntegrityError as exc:  # a concurrent request took a unique value between the check and the write
        identity: dict[str, Any] = {name: user_changes[name] for name in ("username", "email") if name in user_changes}
        _raise_if(_taken_errors(user_type=user_type, user=identity, profile=profile_changes, exclude_user_id=user.pk))
        raise ValidationError("A conflicting change was made at the same time; try again.") from exc
    return changed


def _person_write(
    *, user: CustomUser, user_changes: dict[str, Any], profile_changes: dict[str, Any], actor: CustomUser | None
) -> list[str]:
    account = CustomUser.objects.select_for_update().get(pk=user.pk)
    changed = [name for name, value in user_changes.items() if getattr(account, name) != value]
    email_changed = "email" in changed and user_changes["email"].lower() != account.email.lower()
    email_before = account.email
    rights_before = {name: getattr(account, name) for name in ADMIN_RIGHTS_FIELDS & set(changed)}
    for name in changed:
        setattr(account, name, user_changes[name])
    if email_changed:
        account.email_verified = False  # the new address must be confirmed (its user JSON tells)
    if changed:
        account.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
        account.save()

    model = PROFILE_MODELS[account.user_type]
    record = model.objects.select_for_update().filter(user_id=account.pk).first() or model(user=account)
    profile_changed = [name for name, value in profile_changes.items() if getattr(record, name) != value]
    for name in profile_changed:
        setattr(record, name, profile_changes[name])
    if profile_changed or record.pk is None:
        record.full_clean(validate_unique=False)
        record.save()

    fields = sorted({*changed, *profile_changed})
    if not fields:
        return []
    # The audit trail names who changed which fields (not their values); an address change keeps both
    # addresses, since a changed address is how an account is taken over.
    security_event_record(
        event_type=SecurityEvent.Type.USER_UPDATED, user=account, actor=actor, data={"fields": fields}
    )
    if email_changed:
        email_enqueue(user=account, template=VERIFY_EMAIL_TEMPLATE)
        security_event_record(
            event_type=SecurityEvent.Type.EMAIL_CHANGED,
            user=account,
            actor=actor,
            data={"from": email_before, "to": account.email},
        )
    if rights_before:
        security_event_record(
            event_type=SecurityEvent.Type.ROLE_CHANGED,
            user=account,
            actor=actor,
            data={name: {"from": old, "to": getattr(account, name)} for name, old in rights_before.items()},
        )
    event_enqueue(event_type=EventType.USER_UPDATED, user=account, data={"fields": fields})
    user_invalidate(user_id=account.pk)
    for name in (*changed, "email_verified"):
        setattr(user, name, getattr(account, name))
    return fields


def user_fields_change(*, user: CustomUser, changes: dict[str, Any], actor: CustomUser | None = None) -> list[str]:
    """Change fields of the user row (names, username, e-mail, admin rights); see ``person_change``."""
    return person_change(user=user, user_changes=changes, actor=actor)


def user_email_change(*, user: CustomUser, email: str, actor: CustomUser | None = None) -> list[str]:
    """Change the e-mail address: unverified until the link sent to the new address is opened."""
    return person_change(user=user, user_changes={"email": email}, actor=actor)


def profile_change(*, user: CustomUser, changes: dict[str, Any], actor: CustomUser | None = None) -> list[str]:
    """Change fields of the role profile, with the API's rules; see ``person_change``."""
    return person_change(user=user, profile_changes=changes, actor=actor)


@transaction.atomic
def email_verified_set(*, user: CustomUser) -> None:
    """The address was proven by its verification link: record it (``user.updated``, audit)."""
    account = CustomUser.objects.select_for_update().get(pk=user.pk)
    account.email_verified = True
    account.save(update_fields=["email_verified", "updated_at"])
    event_enqueue(event_type=EventType.USER_UPDATED, user=account, data={"fields": ["email_verified"]})
    security_event_record(event_type=SecurityEvent.Type.EMAIL_VERIFIED, user=account, data={"email": account.email})
    user_invalidate(user_id=account.pk)
    user.email_verified = True
