"""Field rules shared by the API and the roster import: profile fields, uniqueness, academic ids."""

import logging
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils import timezone

from clients.academic import AcademicServiceClient
from clients.exceptions import ServiceError
from clients.exceptions import ServiceUnavailable as AcademicUnavailable
from user_service.exceptions import ApplicationError
from users.models import PROFILE_MODELS, CustomUser, ProfileBase, UserType

logger = logging.getLogger(__name__)

USER_FIELDS = ("username", "email", "first_name", "last_name")
PROFILE_FIELDS: dict[int, tuple[str, ...]] = {
    UserType.STUDENT: (
        "gender",
        "date_of_birth",
        "address",
        "phone_number",
        "student_id",
        "guardian_name",
        "guardian_phone",
        "course_id",
        "session_year_id",
    ),
    UserType.STAFF: ("address", "phone_number", "employee_id", "department", "designation", "date_of_joining"),
    UserType.HOD: ("department", "phone_number"),
}
SCHOOL_ID_FIELDS: dict[int, str] = {UserType.STUDENT: "student_id", UserType.STAFF: "employee_id"}
PHONE_FIELDS = ("phone_number", "guardian_phone")
ACADEMIC_FIELDS = ("course_id", "session_year_id")
ADDRESS_MAX_LENGTH = 1000
MAX_DB_ID = 2_147_483_647  # course_id / session_year_id are PostgreSQL integers

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
    errors: dict[str, list[str]] = {}
    for name in PHONE_FIELDS:
        if profile.get(name):
            try:
                profile[name] = phone_number_validate(profile[name])
            except ValidationError as exc:
                errors[name] = exc.messages
    birth = profile.get("date_of_birth")
    if birth and birth > (today or timezone.localdate()):
        errors["date_of_birth"] = ["The date of birth cannot be in the future."]
    school_id = SCHOOL_ID_FIELDS.get(user_type)
    if school_id and school_id in profile:
        profile[school_id] = (profile[school_id] or "").strip() or None
    if len(profile.get("address") or "") > ADDRESS_MAX_LENGTH:
        errors["address"] = [f"Ensure this field has no more than {ADDRESS_MAX_LENGTH} characters."]
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
            label = "student id" if school_id == "student_id" else "employee id"
            errors[school_id] = [f"Another person already has this {label}."]
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
    except (AcademicUnavailable, ServiceError, ImproperlyConfigured) as exc:
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
    labels = {"course_id": "course", "session_year_id": "session year"}
    return {name: [f"The academic service knows no {labels[name]} with id {ids[0]}."] for name, ids in unknown.items()}
