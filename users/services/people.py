"""Managing people as an HOD: create, update, deactivate and reactivate students, staff and HODs; roster imports."""

import csv
import io
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone
from psycopg.types.json import Jsonb
from rest_framework import status

from clients.academic import AcademicServiceClient
from clients.exceptions import ServiceError
from clients.exceptions import ServiceUnavailable as AcademicUnavailable
from user_service.exceptions import ApplicationError
from users.models import (
    PROFILE_MODELS,
    CustomUser,
    Gender,
    OutboxMessage,
    ProfileBase,
    SecurityEvent,
    SessionEndReason,
    UserType,
)
from users.selectors import EqualsAny, user_public_data
from users.services.auth import sessions_end_for_user
from users.services.outbox import email_enqueue, event_enqueue, outbox_relay_soon
from users.services.users import user_create

logger = logging.getLogger(__name__)

INVITATION_TEMPLATE = "invitation"
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
SCHOOL_ID_FIELDS = {UserType.STUDENT: "student_id", UserType.STAFF: "employee_id"}
PHONE_FIELDS = ("phone_number", "guardian_phone")
ACADEMIC_FIELDS = ("course_id", "session_year_id")
ADDRESS_MAX_LENGTH = 1000
MAX_DB_ID = 2_147_483_647  # course_id / session_year_id are PostgreSQL integers

_PHONE_SHAPE = re.compile(r"\+?[0-9][0-9 \-]*")


class PersonChangeRefused(ApplicationError):
    """A change to a person the rules forbid (deactivating oneself or the last active HOD)."""

    default_code = "change_refused"


class AcademicServiceDown(ApplicationError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "academic_service_unavailable"


# --- Field rules shared by the API and the roster import ---------------------------------------


def phone_number_validate(value: str) -> str:
    """An E.164-like phone number: optional leading +, 7 to 15 digits, spaces and dashes between them."""
    value = value.strip()
    digits = sum(char.isdigit() for char in value)
    if not _PHONE_SHAPE.fullmatch(value) or not value[-1].isdigit() or not 7 <= digits <= 15:
        raise ValidationError(
            "Enter a phone number: an optional +, then 7 to 15 digits (spaces and dashes allowed).", code="invalid"
        )
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
    others = CustomUser.objects.exclude(pk=exclude_user_id)
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
    mode = str(getattr(settings, "ACADEMIC_VALIDATION", "off")).lower()
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


# --- Roster import ------------------------------------------------------------------------------

ROSTER_COLUMNS: dict[int, tuple[str, ...]] = {
    UserType.STUDENT: (*USER_FIELDS, "student_id", "gender", "date_of_birth", "phone_number", "address")
    + ("guardian_name", "guardian_phone", "course_id", "session_year_id"),
    UserType.STAFF: (*USER_FIELDS, "employee_id", "department", "designation", "phone_number", "address")
    + ("date_of_joining",),
}
ROSTER_REQUIRED_COLUMNS = ("username", "email")
ROSTER_ERRORS_SHOWN = 1000
ROSTER_BATCH_SIZE = 2000
ROSTER_QUERY_CHUNK = 5000
_GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O"}
_DATE_COLUMNS = ("date_of_birth", "date_of_joining")
# The trigram GIN indexes of migration 0003 (test_people_search_index checks the two lists agree).
SEARCH_INDEXES = (
    "users_user_first_name_trgm",
    "users_user_last_name_trgm",
    "users_user_username_trgm",
    "users_user_email_trgm",
    "users_student_student_id_trgm",
    "users_staff_employee_id_trgm",
)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INT_COLUMNS = ACADEMIC_FIELDS


class RosterRejected(ApplicationError):
    """The uploaded file is too large to be read at all."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "roster_too_large"


@dataclass
class RosterError:
    line: int | None
    field: str | None
    message: str


@dataclass
class RosterResult:
    dry_run: bool
    rows: int = 0
    created: int = 0
    errors: list[RosterError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        shown = self.errors[:ROSTER_ERRORS_SHOWN]
        return {
            "created": self.created,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "error_count": len(self.errors),
            "errors": [{"line": e.line, "field": e.field, "message": e.message} for e in shown],
        }


@dataclass
class _Row:
    line: int
    user: dict[str, str]
    profile: dict[str, Any]


def roster_import(
    *,
    user_type: int,
    content: bytes,
    dry_run: bool = False,
    actor: CustomUser | None = None,
    max_rows: int | None = None,
) -> RosterResult:
    """Create every person of a CSV roster, or nobody: any error in any row leaves the database untouched.

    The first line names the columns (see ``ROSTER_COLUMNS``; ``username`` and ``email`` are required).
    Accounts get unusable passwords and an invitation e-mail, all written in bulk in one transaction.
    """
    user_type = UserType(int(user_type))
    result = RosterResult(dry_run=dry_run)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        result.errors.append(RosterError(line, None, "The file is not UTF-8 text (first bad byte on this line)."))
        return result
    rows = _roster_rows(user_type, text, result, max_rows=max_rows)
    if not result.errors:
        _roster_check_duplicates(user_type, rows, result)
    if not result.errors:
        _roster_check_academic(rows, result)  # network calls: only for a file that is otherwise good
    if result.errors:
        result.errors.sort(key=lambda e: (e.line or 0, e.field or ""))
        return result
    if not dry_run:
        _roster_write(user_type, rows, actor=actor)
        transaction.on_commit(search_indexes_flush, robust=True)
    result.created = len(rows)
    return result


def _roster_rows(user_type: int, text: str, result: RosterResult, *, max_rows: int | None) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        if not any(header):
            result.errors.append(RosterError(1, None, "The file is empty; its first line must name the columns."))
            return []
        if not _roster_header_ok(user_type, header, result):
            return []
        rows: list[_Row] = []
        today = timezone.localdate()
        line = reader.line_num + 1
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record or not any(value.strip() for value in record):
                continue
            result.rows += 1
            if max_rows is not None and result.rows > max_rows:
                raise RosterRejected(f"The file has more than {max_rows} rows; split it.")
            if len(record) != len(header):
                message = f"This row has {len(record)} values; the header has {len(header)} columns."
                result.errors.append(RosterError(start, None, message))
                continue
            row = _roster_row(user_type, start, dict(zip(header, record, strict=True)), result, today=today)
            if row is not None:
                rows.append(row)
    except csv.Error as exc:
        result.errors.append(RosterError(reader.line_num, None, f"The file is not valid CSV: {exc}."))
        return []
    return rows


def _roster_header_ok(user_type: int, header: list[str], result: RosterResult) -> bool:
    known = ROSTER_COLUMNS[user_type]
    for name in header:
        if name not in known:
            result.errors.append(RosterError(1, name or None, f"Unknown column; the columns are: {', '.join(known)}."))
    for name in sorted({name for name in header if header.count(name) > 1}):
        result.errors.append(RosterError(1, name, "This column appears more than once."))
    for name in ROSTER_REQUIRED_COLUMNS:
        if name not in header:
            result.errors.append(RosterError(1, name, "This column is required."))
    return not result.errors


_username_validator = UnicodeUsernameValidator()
_email_validator = EmailValidator()
_MAX_LENGTHS = {
    "username": 150,
    "email": 254,
    "first_name": 150,
    "last_name": 150,
    "student_id": 32,
    "employee_id": 32,
    "guardian_name": 150,
    "department": 120,
    "designation": 120,
    "phone_number": 20,
    "guardian_phone": 20,
    "address": ADDRESS_MAX_LENGTH,
}


def _roster_row(user_type: int, line: int, values: dict[str, str], result: RosterResult, *, today: date) -> _Row | None:
    """One data row checked and converted; its errors are added to ``result``."""
    errors: dict[str, list[str]] = {}
    values = {name: value.strip() for name, value in values.items()}
    for name, limit in _MAX_LENGTHS.items():
        if len(values.get(name, "")) > limit:
            errors[name] = [f"At most {limit} characters."]
    for name in ROSTER_REQUIRED_COLUMNS:
        if not values.get(name):
            errors[name] = ["This value is required."]
    for name, validator in (("username", _username_validator), ("email", _email_validator)):
        if values.get(name) and name not in errors:
            try:
                validator(values[name])
            except ValidationError as exc:
                errors[name] = exc.messages
    profile: dict[str, Any] = {}
    for name in PROFILE_FIELDS[user_type]:
        if name in values:
            profile[name] = _roster_value(name, values[name], errors)
    for name, messages in _profile_errors(user_type, profile, today=today).items():
        errors.setdefault(name, messages)
    for name, messages in errors.items():
        result.errors.extend(RosterError(line, name, message) for message in messages)
    if errors:
        return None
    user = {name: values.get(name, "") for name in USER_FIELDS}
    user["email"] = CustomUser.objects.normalize_email(user["email"])
    return _Row(line=line, user=user, profile=profile)


def _roster_value(name: str, raw: str, errors: dict[str, list[str]]) -> Any:
    if name == "gender":
        if raw and raw.lower() not in _GENDERS:
            errors[name] = [f"One of {', '.join(Gender.values)} (or Male, Female, Other)."]
        return _GENDERS.get(raw.lower(), "")
    if name in _DATE_COLUMNS:
        if not raw:
            return None
        try:
            if not _ISO_DATE.fullmatch(raw):
                raise ValueError(raw)
            return date.fromisoformat(raw)
        except ValueError:
            errors[name] = ["Enter a date as YYYY-MM-DD."]
            return None
    if name in _INT_COLUMNS:
        if not raw:
            return None
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_DB_ID:
            errors[name] = ["Enter a positive whole number."]
            return None
        return int(raw)
    return raw


def _roster_check_duplicates(user_type: int, rows: list[_Row], result: RosterResult) -> None:
    """Report values repeated inside the file and values already taken in the database: one query per field."""
    school_id = SCHOOL_ID_FIELDS[user_type]
    checks = [
        ("username", lambda row: row.user["username"].lower(), "username"),
        ("email", lambda row: row.user["email"].lower(), "e-mail address"),
        (school_id, lambda row: row.profile.get(school_id), school_id.replace("_", " ")),
    ]
    for name, key_of, label in checks:
        first_line: dict[str, int] = {}
        for row in rows:
            key = key_of(row)
            if not key:
                continue
            if key in first_line:
                result.errors.append(RosterError(row.line, name, f"The same {label} is on line {first_line[key]}."))
            else:
                first_line[key] = row.line
        taken = _values_taken(user_type, name, list(first_line))
        for row in rows:
            if key_of(row) in taken:
                result.errors.append(RosterError(row.line, name, f"A person with this {label} already exists."))


def _values_taken(user_type: int, name: str, values: list[str]) -> set[str]:
    """Which of ``values`` are already in use: one query per field (chunks of IN lists off PostgreSQL)."""
    if name in ("username", "email"):
        # lower(...) matches the case-insensitive unique indexes, so each value is an index probe.
        queryset, key = CustomUser.objects.all(), Lower(name)
    else:
        queryset, key = PROFILE_MODELS[user_type].objects.all(), F(name)
    queryset = queryset.annotate(key=key)
    if connection.vendor == "postgresql":
        return set(queryset.filter(EqualsAny(key, values)).values_list("key", flat=True)) if values else set()
    taken: set[str] = set()
    for start in range(0, len(values), ROSTER_QUERY_CHUNK):
        chunk = values[start : start + ROSTER_QUERY_CHUNK]
        taken.update(queryset.filter(key__in=chunk).values_list("key", flat=True))
    return taken


def _roster_check_academic(rows: list[_Row], result: RosterResult) -> None:
    unknown = academic_unknown_ids(
        course_ids=[row.profile["course_id"] for row in rows if row.profile.get("course_id")],
        session_year_ids=[row.profile["session_year_id"] for row in rows if row.profile.get("session_year_id")],
    )
    for name, ids in unknown.items():
        missing = set(ids)
        for row in rows:
            if row.profile.get(name) in missing:
                label = "course" if name == "course_id" else "session year"
                message = f"The academic service knows no {label} with id {row.profile[name]}."
                result.errors.append(RosterError(row.line, name, message))


@transaction.atomic
def _roster_write(user_type: int, rows: list[_Row], *, actor: CustomUser | None) -> None:
    """Bulk inserts: users (unusable passwords, nothing to hash), profiles, outbox e-mails and events, audit rows."""
    now = timezone.now()
    users = [
        CustomUser(
            user_type=user_type,
            date_joined=now,
            is_staff=user_type == UserType.HOD,
            # What set_unusable_password() stores ("!" + 40 random characters), minus 400,000 random.choice calls.
            password=UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30),
            **row.user,
        )
        for row in rows
    ]
    CustomUser.objects.bulk_create(users, batch_size=ROSTER_BATCH_SIZE)  # PostgreSQL returns the new ids
    profiles = [{"user_id": account.pk, **row.profile} for account, row in zip(users, rows, strict=True)]
    _insert_rows(PROFILE_MODELS[user_type], profiles)
    # The rows email_enqueue / event_enqueue write, inserted in bulk. They are not dispatched one by one after
    # commit (20,000 broker publishes would take longer than the import): one relay task starts on them at once.
    source = {"user_type": int(user_type), "source": "roster_import"}
    messages = []
    for account in users:
        messages.append(
            {
                "kind": OutboxMessage.Kind.EMAIL,
                "topic": INVITATION_TEMPLATE,
                "payload": {"user_id": account.pk, "to": account.email, "context": {}},
            }
        )
        messages.append(
            {
                "kind": OutboxMessage.Kind.EVENT,
                "topic": "user.created",
                "payload": {"user_id": account.pk, "user": user_public_data(account), "data": source},
            }
        )
    _insert_rows(OutboxMessage, messages)
    outbox_relay_soon()
    actor_id = actor.pk if isinstance(actor, CustomUser) else None
    audit = {"user_type": int(user_type), "via": "roster_import"}
    _insert_rows(
        SecurityEvent,
        [
            {"type": SecurityEvent.Type.USER_CREATED, "user_id": account.pk, "actor_id": actor_id, "data": audit}
            for account in users
        ],
    )


def _insert_rows(model: type, rows: list[dict[str, Any]]) -> None:
    """Insert rows given as {attname: value} (other fields take their defaults) whose ids nobody needs back.

    On PostgreSQL with COPY, without building model instances (several times faster than bulk_create);
    elsewhere with bulk_create.
    """
    now = timezone.now()
    fields = [f for f in model._meta.concrete_fields if not f.db_returning]  # the database numbers serial ids
    fixed = {
        f.attname: now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
        for f in fields
        if not f.primary_key
    }
    unique = [f for f in fields if f.primary_key]  # e.g. a UUID primary key: a fresh default per row
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            [model(**{**fixed, **{f.attname: f.get_default() for f in unique}, **row}) for row in rows],
            batch_size=ROSTER_BATCH_SIZE,
        )
        return
    names = [f.attname for f in fields]
    quote = connection.ops.quote_name
    sql = f"COPY {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            values = {**fixed, **{f.attname: f.get_default() for f in unique}, **row}
            copy.write_row([_copy_value(values[name]) for name in names])


def search_indexes_flush() -> None:
    """Merge the pending entries of the search indexes after a bulk insert (PostgreSQL; a no-op elsewhere).

    A GIN index first appends new entries to a pending list, which every search must scan and which the planner
    prices in: after 10,000 new people it may prefer a sequential scan until autovacuum runs (an insert of
    less than 20 % of the table does not trigger it). Merging costs about 0.1 s per 10,000 rows.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name in SEARCH_INDEXES:
            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [name])


def _copy_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return Jsonb(value)
    return value.value if isinstance(value, models.Choices) else value
