"""Roster imports: a CSV file of students or staff, checked as a whole, then everybody created in bulk or nobody."""

import csv
import io
import re
import secrets
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import connection, models, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from user_service.exceptions import ApplicationError
from users.models import PROFILE_MODELS, CustomUser, OutboxMessage, SecurityEvent, UserType
from users.people_schema import MAX_DB_ID, ROLES, USER_FIELDS, max_length, model_field, user_field_required
from users.selectors import EqualsAny
from users.services.outbox import outbox_relay_soon
from users.services.people.bulk import ROSTER_BATCH_SIZE, _insert_rows, search_indexes_flush
from users.services.people.create import users_created_rows
from users.services.people.validation import (
    ACADEMIC_LABELS,
    SCHOOL_ID_FIELDS,
    _profile_errors,
    academic_unknown_ids,
)

# Derived from the declaration of each role's fields (users.people_schema): the user's fields, then the role's roster
# fields in their declared order. How a cell is read follows its model field: a date, a whole number, one of the
# choices (by value or label, any case), or text no longer than the model allows.
ROSTER_COLUMNS: dict[int, tuple[str, ...]] = {
    user_type: (*USER_FIELDS, *role.names(roster=True)) for user_type, role in ROLES.items() if role.roster_import
}
ROSTER_REQUIRED_COLUMNS = tuple(name for name in USER_FIELDS if user_field_required(name))
ROSTER_ERRORS_SHOWN = 1000
ROSTER_QUERY_CHUNK = 5000
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _max_lengths(user_type: int) -> dict[str, int]:
    """The longest value of each text column of a role's roster (choices are read by ``_roster_value``)."""
    role = ROLES[user_type]
    columns = [(CustomUser, name) for name in USER_FIELDS] + [(role.model, name) for name in role.names(roster=True)]
    return {
        name: limit
        for model, name in columns
        if not model_field(model, name).choices and (limit := max_length(model, name)) is not None
    }


@cache
def _choice_aliases(field: models.Field) -> dict[str, str]:
    """A choice field's values by their value or label, lower-cased (``m`` and ``male`` for ``M``)."""
    aliases: dict[str, str] = {}
    for value, text in field.flatchoices:
        aliases[str(value).lower()] = aliases[str(text).lower()] = str(value)
    return aliases


_MAX_LENGTHS = {user_type: _max_lengths(user_type) for user_type in ROSTER_COLUMNS}
_FIELDS = {
    user_type: {name: ROLES[user_type].model_field(name) for name in ROLES[user_type].names(roster=True)}
    for user_type in ROSTER_COLUMNS
}


class RosterRejected(ApplicationError):
    """The uploaded file is too large to be read at all."""

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


def _roster_row(user_type: int, line: int, values: dict[str, str], result: RosterResult, *, today: date) -> _Row | None:
    """One data row checked and converted; its errors are added to ``result``."""
    errors: dict[str, list[str]] = {}
    values = {name: value.strip() for name, value in values.items()}
    for name, limit in _MAX_LENGTHS[user_type].items():
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
    for name, model_field_ in _FIELDS[user_type].items():
        if name in values:
            profile[name] = _roster_value(model_field_, values[name], errors)
    for name, messages in _profile_errors(user_type, profile, today=today).items():
        errors.setdefault(name, messages)
    for name, messages in errors.items():
        result.errors.extend(RosterError(line, name, message) for message in messages)
    if errors:
        return None
    user = {name: values.get(name, "") for name in USER_FIELDS}
    user["email"] = CustomUser.objects.normalize_email(user["email"])
    return _Row(line=line, user=user, profile=profile)


def _roster_value(field: models.Field, raw: str, errors: dict[str, list[str]]) -> Any:
    """One cell as its model field's value (an error under the field's name if it is not one)."""
    name = field.name
    if field.choices:
        aliases = _choice_aliases(field)
        if raw and raw.lower() not in aliases:
            values, labels = zip(*field.flatchoices, strict=True)
            errors[name] = [f"One of {', '.join(map(str, values))} (or {', '.join(map(str, labels))})."]
        return aliases.get(raw.lower(), "")
    if isinstance(field, models.DateField):
        if not raw:
            return None
        try:
            if not _ISO_DATE.fullmatch(raw):
                raise ValueError(raw)
            return date.fromisoformat(raw)
        except ValueError:
            errors[name] = ["Enter a date as YYYY-MM-DD."]
            return None
    if isinstance(field, models.IntegerField):  # ids held for other services
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
    queryset: QuerySet[Any]
    key: Lower | F
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
                message = f"The academic service knows no {ACADEMIC_LABELS[name]} with id {row.profile[name]}."
                result.errors.append(RosterError(row.line, name, message))


@transaction.atomic
def _roster_write(user_type: int, rows: list[_Row], *, actor: CustomUser | None) -> None:
    """Bulk inserts: users (unusable passwords, nothing to hash), profiles, then the rows of the creation owner."""
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
    # The rows user_create's side effects are, from its batch form, inserted in bulk. They are not dispatched one by
    # one after commit (20,000 broker publishes would take longer than the import): one relay task starts on them.
    messages, audit = users_created_rows(users=users, actor=actor, source="roster_import")
    _insert_rows(OutboxMessage, messages)
    outbox_relay_soon()
    _insert_rows(SecurityEvent, audit)
