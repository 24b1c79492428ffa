"""Self-service: registration and a user editing their own account (through the owners in ``people``)."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from users.exceptions import RegistrationClosed
from users.models import CustomUser, UserType
from users.people_schema import ROLES, USER_SELF_EDITABLE_FIELDS
from users.services.people.create import user_create
from users.services.people.update import person_change

# Derived from the declaration of the user's and each role's fields (users.people_schema).
PROFILE_SELF_EDITABLE_FIELDS: dict[int, frozenset[str]] = {
    user_type: frozenset(role.names(self_editable=True)) for user_type, role in ROLES.items()
}


def user_register(*, username: str, email: str, password: str, first_name: str = "", last_name: str = "") -> CustomUser:
    """Self-registration: always a Student, with a validated password; welcome and verification e-mails."""
    if not settings.ALLOW_SELF_REGISTRATION:
        raise RegistrationClosed("Self-registration is disabled; ask your department for an account.")
    return user_create(
        username=username,
        email=email,
        password=password,
        user_type=UserType.STUDENT,
        first_name=first_name,
        last_name=last_name,
        source="registration",
        emails=("welcome", "verify_email"),
    )


def _refuse_fields(data: dict[str, Any], allowed: frozenset[str], *, prefix: str = "") -> None:
    refused = sorted(set(data) - allowed)
    if refused:
        raise ValidationError({f"{prefix}{name}": ["This field cannot be changed here."] for name in refused})


def profile_update(
    *, user: CustomUser, user_data: dict[str, Any], profile_data: dict[str, Any], profile_prefix: str = "profile."
) -> CustomUser:
    """A user editing their own account: only the fields listed as self-editable for their role.

    Errors name a profile field as ``profile_prefix`` + its name: ``profile.address`` for a body nesting the profile
    (``profile/``), ``address`` for a flat one (``{id}/``).
    """
    _refuse_fields(user_data, USER_SELF_EDITABLE_FIELDS)
    _refuse_fields(profile_data, PROFILE_SELF_EDITABLE_FIELDS[user.user_type], prefix=profile_prefix)
    try:
        person_change(user=user, user_changes=user_data, profile_changes=profile_data, actor=user)
    except ValidationError as exc:
        if not hasattr(exc, "error_dict"):
            raise
        profile_names = PROFILE_SELF_EDITABLE_FIELDS[user.user_type]
        errors = exc.message_dict
        keyed = {(f"{profile_prefix}{n}" if n in profile_names else n): errors[n] for n in errors}
        raise ValidationError(keyed) from exc
    return user
