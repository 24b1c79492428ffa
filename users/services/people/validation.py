"""Field rules shared by the API and the roster import: profile fields, uniqueness, academic ids."""

import logging
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from clients.academic import AcademicServiceClient
from clients.exceptions import ClientNotConfigured, ServiceError
from clients.exceptions import ServiceUnavailable as AcademicUnavailable
from user_service.exceptions import ApplicationError
from users.models import PROFILE_MODELS, CustomUser, ProfileBase
from users.people_schema import (
    ROLES,
    TEXT_MAX_LENGTH,
    Rule,
    label,
    rule_fields,
)

logger = logging.getLogger(__name__)

# Derived from the declaration of each role's fields (users.people_schema).
PROFILE_FIELDS: dict[int, tuple[str, ...]] = {user_type: role.names(api=True) for user_type, role in ROLES.items()}
SCHOOL_ID_FIELDS: dict[int, str] = {
    user_type: name for user_type, role in ROLES.items() for name in role.names(rule=Rule.SCHOOL_ID)
}
PHONE_FIELDS = rule_fields(Rule.PHONE)
ACADEMIC_FIELDS = rule_fields(Rule.ACADEMIC_ID)
# What an academic id names, in messages: "course" for course_id (its model label without " id").
ACADEMIC_LABELS: dict[str, str] = {
    name: label(role.model, name).removesuffix(" id")
    for role in ROLES.values()
    for name in role.names(rule=Rule.ACADEMIC_ID)
}

# An optional +, then 7 to 15 digits with spaces or dashes between them (the API's schema states it too).
PHONE_PATTERN = r"\+?[0-9](?:[ \-]*[0-9]){6,14}"
PHONE_MESSAGE = "Enter a phone number: an optional +, then 7 to 15 digits (spaces and dashes allowed)."
_PHONE = re.compile(PHONE_PATTERN)


class AcademicServiceDown(ApplicationError):
    default_code = "academic_service_unavailable"


# --- Field rules shared by the API and the roster import ---------------------------------------


def phone_number_validate(value: str) -> str:
    """An E.164-like phone number: optional leading +, 7 to 15 digits, spaces and dashes between them."""
    value = value.strip()
    if not _PHONE.fullmatch(value):
        raise ValidationError(PHONE_MESSAGE, code="invalid")
    return value


def _profile_errors(user_type: int, profile: dict[str, Any], *, today: date | None = None) -> dict[str, list[str]]:
    """Check and normalise (in place) the role profile fields; field-named messages for what is wrong."""
    role = ROLES[user_type]
    errors: dict[str, list[str]] = {}
    for name in role.names(rule=Rule.PHONE):
        if profile.get(name):
            try:
                profile[name] = phone_number_validate(profile[name])
            except ValidationError as exc:
                errors[name] = exc.messages
    for name in role.names(rule=Rule.NOT_FUTURE):
        value = profile.get(name)
        if value and value > (today or timezone.localdate()):
            errors[name] = [f"The {label(role.model, name)} cannot be in the future."]
    for name in role.names(rule=Rule.SCHOOL_ID):
        if name in profile:
            profile[name] = (profile[name] or "").strip() or None
    for name in role.names():  # text the database does not bound (a TextField): the service's limit
        value = profile.get(name)
        if (
            isinstance(role.model_field(name), models.TextField)
            and isinstance(value, str)
            and len(value) > TEXT_MAX_LENGTH
        ):
            errors[name] = [f"Ensure this field has no more than {TEXT_MAX_LENGTH} characters."]
    return errors


def _taken_errors(
    *, user_type: int, user: dict[str, Any], profile: dict[str, Any], exclude_user_id: int | None = None
) -> dict[str, list[str]]:
    """Field-named errors for a username, e-mail (both case-insensitive) or student/employee id already in use."""
    errors: dict[str, list[str]] = {}
    others = CustomUser.objects.all() if exclude_user_id is None else CustomUser.objects.exclude(pk=exclude_user_id)
    if user.get("username") and others.filter(username__iexact=user["username"]).exists():
        errors["username"] = ["A user with this username already exists."]
    if user.get("email") and others.filter(email__iexact=user["email"]).exists():
        errors["email"] = ["A user with this e-mail address already exists."]
    school_id = SCHOOL_ID_FIELDS.get(user_type)
    if school_id and profile.get(school_id):
        model = PROFILE_MODELS[user_type]
        if model.objects.filter(**{school_id: profile[school_id]}).exclude(user_id=exclude_user_id).exists():
            errors[school_id] = [f"Another person already has this {label(model, school_id)}."]
    return errors


def academic_unknown_ids(*, course_ids: Iterable[int], session_year_ids: Iterable[int]) -> dict[str, list[int]]:
    """Course and session-year ids the academic service does not know, checked as ``ACADEMIC_VALIDATION`` says.

    ``off`` (default): no call. ``strict``: unknown ids are reported; the service being unreachable raises a 503.
    ``lenient``: unknown ids are reported when the service answers; when it is down the ids are accepted unchecked
    and a warning is logged.
    """
    mode = str(settings.ACADEMIC_VALIDATION).lower()
    courses, session_years = sorted(set(course_ids)), sorted(set(session_year_ids))
    if mode not in ("strict", "lenient") or not (courses or session_years):
        return {}
    try:
        client = AcademicServiceClient.shared()
        unknown = {
            "course_id": [course for course in courses if client.get_course(course) is None],
            "session_year_id": [year for year in session_years if client.get_session_year(year) is None],
        }
    except (AcademicUnavailable, ServiceError, ClientNotConfigured) as exc:
        if mode == "strict":
            raise AcademicServiceDown(
                "The academic service is unavailable, so course_id and session_year_id cannot be checked; "
                "nothing was saved. Try again shortly."
            ) from exc
        logger.warning("academic service unavailable, course and session year ids accepted unchecked: %s", exc)
        return {}
    return {name: ids for name, ids in unknown.items() if ids}


def _academic_errors(profile: dict[str, Any], *, before: ProfileBase | None = None) -> dict[str, list[str]]:
    """Errors for course/session year ids the academic service does not know (only ids that change are checked)."""
    changed = {
        name: profile[name]
        for name in ACADEMIC_FIELDS
        if profile.get(name) is not None and (before is None or getattr(before, name) != profile[name])
    }
    if not changed:
        return {}
    unknown = academic_unknown_ids(
        course_ids=[changed["course_id"]] if "course_id" in changed else [],
        session_year_ids=[changed["session_year_id"]] if "session_year_id" in changed else [],
    )
    return {
        name: [f"The academic service knows no {ACADEMIC_LABELS[name]} with id {ids[0]}."]
        for name, ids in unknown.items()
    }
