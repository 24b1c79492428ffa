"""Creating a person: the user row with the profile of its role, and everything a creation writes besides.

``user_create`` is the owner every entry point calls (registration, the HOD API, the admin's add form,
``createsuperuser``); ``users_created_rows`` is its batch form for the roster import, which inserts the rows itself
with COPY. ``user_rows_create`` checks the identity is free and has ``CustomUser.objects.create_user`` build the two
rows, nothing else (tests, factories).
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from users.models import CustomUser, EventType, SecurityEvent, UserType
from users.services.audit import security_event_record, security_event_row
from users.services.outbox import email_enqueue, email_message_row, event_enqueue, event_message_row
from users.services.people.passwords import password_policy_check

INVITATION_TEMPLATE = "invitation"


def _email_taken(email: str, *, exclude_id: int | None = None) -> bool:
    qs = CustomUser.objects.filter(email__iexact=email)
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return bool(email) and qs.exists()


def identity_free_check(user: CustomUser) -> None:
    """Field-named errors for a username or e-mail already taken, compared case-insensitively."""
    errors = {}
    if CustomUser.objects.filter(username__iexact=user.username).exclude(pk=user.pk).exists():
        errors["username"] = ["A user with this username already exists."]
    if _email_taken(user.email, exclude_id=user.pk):
        errors["email"] = ["A user with this e-mail address already exists."]
    if errors:
        raise ValidationError(errors)


def user_rows_create(
    *,
    username: str,
    email: str,
    password: str | None,
    user_type: int = UserType.STUDENT,
    profile: dict[str, Any] | None = None,
    **fields: Any,
) -> CustomUser:
    """Create a user and, in the same transaction, the profile of its role. No password: unusable. No side effects.

    A username or e-mail already taken (case-insensitively) is refused with field-named errors first.
    """
    identity_free_check(CustomUser(username=username, email=email))
    return CustomUser.objects.create_user(username, email, password, user_type=user_type, profile=profile, **fields)


@transaction.atomic
def user_create(
    *,
    username: str,
    email: str,
    password: str | None,
    source: str,
    user_type: int = UserType.STUDENT,
    profile: dict[str, Any] | None = None,
    actor: CustomUser | None = None,
    emails: tuple[str, ...] = (),
    invite: bool = True,
    check_password: bool = True,
    **fields: Any,
) -> CustomUser:
    """Create a person with its profile; event ``user.created``, audit record and e-mails in the same transaction.

    ``emails``: templates sent to the new person; ``invite``: without a password, the set-password invitation.
    ``source`` says which entry point created them (in the event and the audit record).
    """
    if password and check_password:
        candidate = CustomUser(username=username, email=email, user_type=user_type, **fields)
        password_policy_check(password=password, user=candidate)
    user = user_rows_create(
        username=username, email=email, password=password, user_type=user_type, profile=profile, **fields
    )
    for template in emails:
        email_enqueue(user=user, template=template)
    if invite and not user.has_usable_password():
        email_enqueue(user=user, template=INVITATION_TEMPLATE)
    event_enqueue(
        event_type=EventType.USER_CREATED, user=user, data={"user_type": int(user.user_type), "source": source}
    )
    security_event_record(
        event_type=SecurityEvent.Type.USER_CREATED,
        user=user,
        actor=actor,
        data={"user_type": int(user.user_type), "via": source},
    )
    return user


def users_created_rows(
    *, users: list[CustomUser], actor: CustomUser | None, source: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Batch form of ``user_create``'s side effects, for users inserted in bulk without a password.

    Returns the outbox rows (invitation e-mail, ``user.created`` event) and the audit rows, as ``{attname: value}``
    for the caller's bulk insert in its transaction.
    """
    messages: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    for user in users:
        data = {"user_type": int(user.user_type), "source": source}
        if not user.has_usable_password():
            messages.append(email_message_row(user=user, template=INVITATION_TEMPLATE))
        messages.append(event_message_row(event_type=EventType.USER_CREATED, user=user, data=data))
        audit.append(
            security_event_row(
                event_type=SecurityEvent.Type.USER_CREATED,
                user_id=user.pk,
                actor=actor,
                data={"user_type": int(user.user_type), "via": source},
            )
        )
    return messages, audit
