"""Creating users with the profile of their role, self-registration, and profile updates."""

from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from users.exceptions import RegistrationClosed
from users.models import PROFILE_MODELS, CustomUser, ProfileBase, UserType
from users.selectors import user_profile
from users.services.outbox import email_enqueue, event_enqueue

USER_SELF_EDITABLE_FIELDS = frozenset({"first_name", "last_name", "email"})
PROFILE_SELF_EDITABLE_FIELDS: dict[int, frozenset[str]] = {
    UserType.HOD: frozenset({"department", "phone_number"}),
    UserType.STAFF: frozenset({"address", "phone_number"}),
    UserType.STUDENT: frozenset({"address", "phone_number", "guardian_name", "guardian_phone"}),
}


def _email_taken(email: str, *, exclude_id: int | None = None) -> bool:
    qs = CustomUser.objects.filter(email__iexact=email)
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return bool(email) and qs.exists()


def _check_identity_free(user: CustomUser) -> None:
    """Field-named errors for a username or e-mail already taken, compared case-insensitively."""
    errors = {}
    if CustomUser.objects.filter(username__iexact=user.username).exclude(pk=user.pk).exists():
        errors["username"] = ["A user with this username already exists."]
    if _email_taken(user.email, exclude_id=user.pk):
        errors["email"] = ["A user with this e-mail address already exists."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def user_create(
    *,
    username: str,
    email: str,
    password: str | None,
    user_type: int = UserType.STUDENT,
    profile: dict[str, Any] | None = None,
    **fields: Any,
) -> CustomUser:
    """Create a user and, in the same transaction, the profile of its role. No password: unusable."""
    user_type = UserType(int(user_type))
    user = CustomUser(username=username, email=email, user_type=user_type, **fields)
    if user_type == UserType.HOD:
        user.is_staff = True  # HODs use the Django admin
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
    _check_identity_free(user)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # a concurrent insert won the race on username or e-mail
        raise ValidationError({"username": ["A user with this username or e-mail already exists."]}) from exc
    profile_model = PROFILE_MODELS[user_type]
    profile_obj = profile_model(user=user, **(profile or {}))
    profile_obj.full_clean()
    profile_obj.save()
    return user


def user_register(*, username: str, email: str, password: str, first_name: str = "", last_name: str = "") -> CustomUser:
    """Self-registration: always a Student, with a validated password."""
    if not settings.ALLOW_SELF_REGISTRATION:
        raise RegistrationClosed("Self-registration is disabled; ask your department for an account.")
    candidate = CustomUser(username=username, email=email, first_name=first_name, last_name=last_name)
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    with transaction.atomic():
        user = user_create(
            username=username,
            email=email,
            password=password,
            user_type=UserType.STUDENT,
            first_name=first_name,
            last_name=last_name,
        )
        # welcome + verification e-mails and the user.created event, in the same transaction
        email_enqueue(user=user, template="welcome")
        email_enqueue(user=user, template="verify_email")
        event_enqueue(event_type="user.created", user=user, data={"source": "registration"})
    return user


def _refuse_fields(data: dict[str, Any], allowed: frozenset[str], *, prefix: str = "") -> None:
    refused = sorted(set(data) - allowed)
    if refused:
        raise ValidationError({f"{prefix}{name}": ["This field cannot be changed here."] for name in refused})


@transaction.atomic
def profile_update(*, user: CustomUser, user_data: dict[str, Any], profile_data: dict[str, Any]) -> CustomUser:
    """A user editing their own account: only the fields listed as self-editable for their role."""
    _refuse_fields(user_data, USER_SELF_EDITABLE_FIELDS)
    _refuse_fields(profile_data, PROFILE_SELF_EDITABLE_FIELDS[user.user_type], prefix="profile.")

    user = CustomUser.objects.select_for_update().get(pk=user.pk)
    email_changed = "email" in user_data and user_data["email"].lower() != user.email.lower()
    if email_changed:
        user.email_verified = False
    for name, value in user_data.items():
        setattr(user, name, value)
    user.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
    if "email" in user_data:
        _check_identity_free(user)
    user.save()

    profile: ProfileBase | None = user_profile(user)
    if profile is None:
        profile = PROFILE_MODELS[user.user_type](user=user)
    for name, value in profile_data.items():
        setattr(profile, name, value)
    profile.full_clean()
    profile.save()
    if email_changed:  # the new address must be confirmed; the link goes to it
        email_enqueue(user=user, template="verify_email")
    event_enqueue(event_type="user.updated", user=user, data={"fields": sorted([*user_data, *profile_data])})
    return user


@transaction.atomic
def user_profile_ensure(*, user: CustomUser) -> ProfileBase:
    """Give a user created outside ``user_create`` (e.g. the admin's add form) the profile of its role."""
    profile_model = PROFILE_MODELS[user.user_type]
    profile, _ = profile_model.objects.get_or_create(user=user)
    if user.user_type == UserType.HOD and not user.is_staff:
        CustomUser.objects.filter(pk=user.pk).update(is_staff=True)
        user.is_staff = True
    return profile
