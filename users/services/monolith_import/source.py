"""Reading the monolith's SQLite file and mapping its rows to the service's values, with the problems found."""

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.contrib.auth.hashers import identify_hasher, is_password_usable
from django.db import models

from users.models import AdminHOD, CustomUser, Gender, ProfileBase, Staff, Student, UserType
from users.services.monolith_import.result import (
    EMAIL_EMPTY,
    EMAIL_INVALID,
    ERROR,
    GENDER_UNKNOWN,
    HASH_UNKNOWN,
    VALUE_INVALID,
    WARNING,
    ImportProblem,
)

USERS_TABLE = "student_management_app_customuser"
PROFILE_TABLES: dict[type[ProfileBase], str] = {
    AdminHOD: "student_management_app_adminhod",
    Staff: "student_management_app_staffs",
    Student: "student_management_app_students",
}
USER_COLUMNS = (
    "id, password, last_login, is_superuser, username, first_name, last_name, email, is_staff, is_active, "
    "date_joined, user_type"
)
PROFILE_COLUMNS: dict[type[ProfileBase], str] = {
    AdminHOD: "id, admin_id",
    Staff: "id, admin_id, address",
    Student: "id, admin_id, gender, address, course_id_id, session_year_id_id, profile_pic",
}
GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O"}
OTHER_GENDER, HOD = Gender.OTHER.value, int(UserType.HOD)  # plain values: enum access is slow in a hot loop
MAX_LENGTHS: dict[tuple[type[models.Model], str], int] = {
    (model, f.name): f.max_length for model in (CustomUser, Staff, Student) for f in model._meta.fields if f.max_length
}
MAX_REFERENCE_ID = 2_147_483_647
EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # a cheap sanity check for the warning only


class MonolithSourceInvalid(Exception):
    """The monolith database is missing, unreadable, or lacks a table or column the import needs."""


# --- Reading the source ---------------------------------------------------------------------------


class _MonolithSource:
    """Read-only access to the monolith's SQLite file; checks tables and columns up front."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MonolithSourceInvalid(f"Monolith database not found: {self.path}")
        try:
            self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            self.db.row_factory = sqlite3.Row
            tables = {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise MonolithSourceInvalid(f"{self.path} is not a readable SQLite database: {exc}") from exc
        wanted = {USERS_TABLE: USER_COLUMNS} | {PROFILE_TABLES[m]: PROFILE_COLUMNS[m] for m in PROFILE_TABLES}
        missing_tables = [table for table in wanted if table not in tables]
        if missing_tables:
            raise MonolithSourceInvalid(f"{self.path} has no table {', '.join(missing_tables)}; is it the monolith?")
        for table, columns in wanted.items():
            present = {row["name"] for row in self.db.execute(f'PRAGMA table_info("{table}")')}
            missing = [c for c in (c.strip() for c in columns.split(",")) if c not in present]
            if missing:
                raise MonolithSourceInvalid(f"Table {table} in {self.path} lacks column(s) {', '.join(missing)}.")

    def close(self) -> None:
        self.db.close()

    def max_id(self, table: str) -> int:
        return self.db.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"').fetchone()[0]  # noqa: S608

    def user_keys(self) -> Iterator[tuple[int, Any, Any, Any]]:
        yield from self.db.execute(f'SELECT id, username, email, user_type FROM "{USERS_TABLE}" ORDER BY id')  # noqa: S608

    def users_after(self, last_id: int, limit: int) -> list[sqlite3.Row]:
        sql = f'SELECT {USER_COLUMNS} FROM "{USERS_TABLE}" WHERE id > ? ORDER BY id LIMIT ?'  # noqa: S608
        return self.db.execute(sql, (last_id, limit)).fetchall()

    def profiles_between(self, model: type[ProfileBase], first_id: int, last_id: int) -> list[sqlite3.Row]:
        table, columns = PROFILE_TABLES[model], PROFILE_COLUMNS[model]
        sql = f'SELECT {columns} FROM "{table}" WHERE admin_id BETWEEN ? AND ? ORDER BY id'  # noqa: S608
        return self.db.execute(sql, (first_id, last_id)).fetchall()

    def orphan_profiles(self, model: type[ProfileBase]) -> list[sqlite3.Row]:
        sql = (
            f'SELECT p.id, p.admin_id FROM "{PROFILE_TABLES[model]}" p '  # noqa: S608
            f'WHERE NOT EXISTS (SELECT 1 FROM "{USERS_TABLE}" u WHERE u.id = p.admin_id) ORDER BY p.id'
        )
        return self.db.execute(sql).fetchall()


# --- Mapping source values to the service's ------------------------------------------------------


class _BadValue(Exception):
    pass


def _user_type(value: Any) -> int | None:
    text = "" if value is None else str(value).strip()
    return int(text) if text in {"1", "2", "3"} else None


def _bool(name: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in {"1", "true", "t"}:
        return True
    if text in {"0", "false", "f"}:
        return False
    raise _BadValue(f"{name} {value!r} is not a boolean")


def _datetime(name: str, value: Any, *, required: bool = False) -> datetime | None:
    """Django's SQLite columns hold naive UTC text; an offset, if present, is honoured."""
    if value is None or str(value).strip() == "":
        if required:
            raise _BadValue(f"{name} is empty")
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise _BadValue(f"{name} {value!r} is not a date and time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _text(model: type[models.Model], name: str, value: Any, *, required: bool = False) -> str:
    text = "" if value is None else str(value)
    if required and not text.strip():
        raise _BadValue(f"{name} is empty")
    max_length = MAX_LENGTHS.get((model, name))
    if max_length and len(text) > max_length:
        raise _BadValue(f"{name} is {len(text)} characters long; the service allows {max_length}")
    return text


def _reference_id(name: str, value: Any) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not text.isdigit() or int(text) > MAX_REFERENCE_ID:
        raise _BadValue(f"{name} {value!r} is not a valid id")
    return int(text)


def _email_key(value: Any) -> str:
    return "" if value is None else str(value).strip().lower()


def _hash_recognised(password_hash: str, algorithms: frozenset[str]) -> bool:
    if _algorithm(password_hash) in algorithms:
        return True
    try:
        identify_hasher(password_hash)
    except ValueError:
        return False
    return True


def _user_values(row: sqlite3.Row, *, algorithms: frozenset[str]) -> tuple[dict[str, Any] | None, list[ImportProblem]]:
    """The target field values of one source user, or None (rejected), plus the problems found."""
    uid = row["id"]
    user_type = _user_type(row["user_type"])
    try:
        if user_type is None:
            raise _BadValue(f"user_type {row['user_type']!r} is not 1 (HOD), 2 (Staff) or 3 (Student)")
        email = CustomUser.objects.normalize_email(_text(CustomUser, "email", row["email"]).strip())
        password = _text(CustomUser, "password", row["password"])
        values: dict[str, Any] = {
            "username": _text(CustomUser, "username", row["username"], required=True),
            "email": email,
            "password": password,
            "first_name": _text(CustomUser, "first_name", row["first_name"]),
            "last_name": _text(CustomUser, "last_name", row["last_name"]),
            "user_type": user_type,
            "is_active": _bool("is_active", row["is_active"]),
            # HODs use the Django admin, as user_create() makes them.
            "is_staff": True if user_type == HOD else _bool("is_staff", row["is_staff"]),
            "is_superuser": _bool("is_superuser", row["is_superuser"]),
            "date_joined": _datetime("date_joined", row["date_joined"], required=True),
            "last_login": _datetime("last_login", row["last_login"]),
        }
    except _BadValue as exc:
        return None, [ImportProblem(VALUE_INVALID, ERROR, USERS_TABLE, uid, f"{exc}; row rejected")]
    problems = []
    if not email:
        message = "empty e-mail; imported without one (no mail can reach this user)"
        problems.append(ImportProblem(EMAIL_EMPTY, WARNING, USERS_TABLE, uid, message))
    elif not EMAIL_SHAPE.fullmatch(email):
        message = f"e-mail {email!r} is not shaped like an address; imported as it is"
        problems.append(ImportProblem(EMAIL_INVALID, WARNING, USERS_TABLE, uid, message))
    if is_password_usable(password) and not _hash_recognised(password, algorithms):
        message = "password hash format not recognised by this service; the user must reset the password"
        problems.append(ImportProblem(HASH_UNKNOWN, WARNING, USERS_TABLE, uid, message))
    return values, problems


def _profile_values(model: type[ProfileBase], row: sqlite3.Row) -> tuple[dict[str, Any] | None, list[ImportProblem]]:
    """The target field values of one source profile, or None (invalid), plus the problems found."""
    table, pid = PROFILE_TABLES[model], row["id"]
    try:
        if model is AdminHOD:
            return {}, []
        if model is Staff:
            return {"address": _text(Staff, "address", row["address"])}, []
        values = {
            "address": _text(Student, "address", row["address"]),
            "course_id": _reference_id("course_id_id", row["course_id_id"]),
            "session_year_id": _reference_id("session_year_id_id", row["session_year_id_id"]),
            "profile_pic": _text(Student, "profile_pic", row["profile_pic"]),
        }
    except _BadValue as exc:
        message = f"{exc}; user id={row['admin_id']} rejected with it"
        return None, [ImportProblem(VALUE_INVALID, ERROR, table, pid, message)]
    raw_gender = "" if row["gender"] is None else str(row["gender"]).strip()
    values["gender"] = GENDERS.get(raw_gender.lower(), OTHER_GENDER) if raw_gender else ""
    if raw_gender and raw_gender.lower() not in GENDERS:
        message = f"gender {raw_gender!r} of user id={row['admin_id']} is not male/female; imported as 'O'"
        return values, [ImportProblem(GENDER_UNKNOWN, WARNING, table, pid, message)]
    return values, []


def _algorithm(password_hash: str) -> str:
    return password_hash.split("$", 1)[0] if "$" in password_hash else ""


@dataclass
class _Account:
    user_id: int
    values: dict[str, Any]
    model: type[ProfileBase]
    profile_id: int | None
    profile_values: dict[str, Any]
