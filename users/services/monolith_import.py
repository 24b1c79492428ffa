"""Import users and role profiles from the monolith's SQLite database, keeping ids and password hashes.

How a run goes: a first pass over the source's user keys rejects rows with a bad ``user_type`` and skips
case-insensitive duplicates of usernames and e-mails (the lowest id wins); then users are read in id
order in batches. Each batch is one transaction: a fixed number of queries looks up what the target
holds for those ids (users, profiles) while usernames and e-mails are checked against a map of the
target's loaded once, every account is planned as created, updated, unchanged or refused, and the
writes go out in bulk (COPY on PostgreSQL, ``bulk_create`` elsewhere; ``bulk_update`` for changes).
Before writing, PostgreSQL's id sequences are moved above the source's ids, so profiles the import
creates itself and accounts the live service creates meanwhile never take an id the monolith uses;
afterwards they are reset to the tables' maximum ids.
"""

import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.contrib.auth.hashers import get_hasher, get_hashers, identify_hasher, is_password_usable
from django.core.management.color import no_style
from django.db import DataError, IntegrityError, connection, models, transaction
from django.db.models import F, Lookup, Max
from django.db.models.functions import Lower
from django.db.models.lookups import In
from django.utils import timezone

from users.models import (
    PROFILE_MODELS,
    AdminHOD,
    CustomUser,
    Gender,
    ProfileBase,
    SessionEndReason,
    Staff,
    Student,
    UserType,
)
from users.selectors import user_snapshot_invalidate
from users.services.auth import sessions_end_for_user

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
# The target fields the import owns; they are compared on every run to tell "unchanged" from "updated".
USER_FIELDS = (
    "username",
    "email",
    "password",
    "first_name",
    "last_name",
    "user_type",
    "is_active",
    "is_staff",
    "is_superuser",
    "date_joined",
    "last_login",
)
PROFILE_FIELDS: dict[type[ProfileBase], tuple[str, ...]] = {
    AdminHOD: (),
    Staff: ("address",),
    Student: ("gender", "address", "course_id", "session_year_id", "profile_pic"),
}
PUBLIC_USER_FIELDS = frozenset(
    {"username", "email", "first_name", "last_name", "user_type", "is_active", "date_joined"}
)
GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O"}
OTHER_GENDER, HOD = Gender.OTHER.value, int(UserType.HOD)  # plain values: enum access is slow in a hot loop
MAX_LENGTHS = {
    (model, f.name): f.max_length for model in (CustomUser, Staff, Student) for f in model._meta.fields if f.max_length
}
MAX_REFERENCE_ID = 2_147_483_647
EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # a cheap sanity check for the warning only
ANALYZE_FIRST_AT = 2_000  # accounts created before the first ANALYZE; doubled after each one
BULK_UPDATE_ROWS = 100  # bulk_update builds one CASE WHEN per row and field; small statements stay linear

ERROR, SKIPPED, WARNING = "error", "skipped", "warning"

# Problem kinds: what was wrong with a source row, and what the import did about it.
USER_TYPE_INVALID = "user_type_invalid"  # error: user_type not "1"/"2"/"3"; row rejected
VALUE_INVALID = "value_invalid"  # error: a value the target cannot hold faithfully; account rejected
ID_CONFLICT = "id_conflict"  # error: the target holds another person under this id; not overwritten
USER_TYPE_CHANGED = "user_type_changed"  # error: the role changed since the last import; left as it is
USERNAME_TAKEN = "username_taken"  # error: another target user has this username (case-insensitively)
EMAIL_TAKEN = "email_taken"  # error: another target user has this e-mail (case-insensitively)
PROFILE_CONFLICT = "profile_conflict"  # error: the profile id, or the user's profile, is held differently
DATABASE_REFUSED = "database_refused"  # error: the database refused the row (e.g. a concurrent write)
EMAIL_DUPLICATE = "email_duplicate"  # skipped: same e-mail as a lower id in the source
USERNAME_DUPLICATE = "username_duplicate"  # skipped: same username (case-insensitively) as a lower id
PROFILE_ORPHAN = "profile_orphan"  # skipped: profile whose user does not exist
PROFILE_TYPE_MISMATCH = "profile_type_mismatch"  # skipped: profile table does not match the user's type
PROFILE_DUPLICATE = "profile_duplicate"  # skipped: a second profile of the same user in the same table
PROFILE_MISSING = "profile_missing"  # warning: user without a profile of its type; an empty one is created
EMAIL_EMPTY = "email_empty"  # warning: imported without an e-mail (no reset or verification mail possible)
EMAIL_INVALID = "email_invalid"  # warning: imported as it is, but not a valid address
GENDER_UNKNOWN = "gender_unknown"  # warning: free text mapped to "O"
HASH_UNKNOWN = "password_hash_unknown"  # warning: hash format this service cannot verify; a reset is needed


class MonolithSourceInvalid(Exception):
    """The monolith database is missing, unreadable, or lacks a table or column the import needs."""


@dataclass(frozen=True)
class ImportProblem:
    kind: str
    severity: str
    table: str
    row_id: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.table} id={self.row_id}: {self.message}"


@dataclass(frozen=True)
class BatchProgress:
    batch: int
    first_id: int
    last_id: int
    processed: int
    total: int
    seconds: float


@dataclass
class MonolithImportResult:
    """One run: accounts created/updated/unchanged, source rows skipped or rejected, and every problem."""

    source: str
    dry_run: bool
    batch_size: int
    total_users: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: int = 0
    warnings: int = 0
    profiles_created: int = 0
    profiles_updated: int = 0
    sessions_ended: int = 0
    batches: int = 0
    sequences_reset: list[str] = field(default_factory=list)
    notify_message: str = ""
    seconds: float = 0.0
    problems: list[ImportProblem] = field(default_factory=list)

    def add(self, problem: ImportProblem) -> None:
        self.problems.append(problem)
        if problem.severity == ERROR:
            self.errors += 1
        elif problem.severity == SKIPPED:
            self.skipped += 1
        else:
            self.warnings += 1

    @property
    def summary(self) -> str:
        return (
            f"created={self.created} updated={self.updated} unchanged={self.unchanged} "
            f"skipped={self.skipped} errors={self.errors} warnings={self.warnings}"
        )

    def problems_by_kind(self) -> dict[str, list[ImportProblem]]:
        grouped: dict[str, list[ImportProblem]] = defaultdict(list)
        for problem in self.problems:
            grouped[problem.kind].append(problem)
        return dict(grouped)


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


def _text(model: type, name: str, value: Any, *, required: bool = False) -> str:
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
        values = {
            "username": _text(CustomUser, "username", row["username"], required=True),
            "email": email,
            "password": _text(CustomUser, "password", row["password"]),
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
    if is_password_usable(values["password"]) and not _hash_recognised(values["password"], algorithms):
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


def _password_after_import(source: str, target: str, *, preferred: str) -> str:
    """The source hash wins, unless the target's was made by this service (upgrade on login, new password)."""
    if source == target or (_algorithm(target) == preferred and _algorithm(source) != preferred):
        return target
    return source


def monolith_import_notify(*, user_ids: list[int]) -> bool:
    """Announce imported accounts. There is no outbox yet, so nothing is sent; returns whether it was."""
    return False


# --- Looking at the target ------------------------------------------------------------------------


class _AnyOf(Lookup):
    """``lhs IN (SELECT unnest(%s::bigint[]))``: one array parameter however many ids (PostgreSQL).

    The semi-join gets index probes, where ``IN (%s, %s, ...)`` costs client-side parsing of a thousand
    placeholders and ``= ANY(array)`` was planned as a sequential scan on tables of tens of thousands of rows.
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple]:
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} IN (SELECT unnest(%s::bigint[]))", (*params, list(self.rhs))


def _postgresql() -> bool:
    """PostgreSQL gets COPY, array lookups and sequence handling; other databases the portable ORM path."""
    return connection.vendor == "postgresql"


def _among(expression: Any, values: list) -> Lookup:
    return _AnyOf(expression, values) if _postgresql() else In(expression, values)


@dataclass
class _Account:
    user_id: int
    values: dict[str, Any]
    model: type[ProfileBase]
    profile_id: int | None
    profile_values: dict[str, Any]


@dataclass
class _Target:
    """What the target holds for one batch's ids, fetched with a fixed number of queries (range scans mostly)."""

    users: dict[int, dict[str, Any]]
    profiles_by_id: dict[type[ProfileBase], dict[int, dict[str, Any]]]
    profiles_by_user: dict[type[ProfileBase], dict[int, dict[str, Any]]]

    @classmethod
    def load(cls, accounts: list[_Account], *, lock: bool) -> "_Target":
        id_range = (accounts[0].user_id, accounts[-1].user_id)  # accounts come in id order
        names = ("id", *USER_FIELDS, "deactivated_at")
        users_qs = CustomUser.objects.filter(pk__range=id_range).values_list(*names)
        users = {
            row[0]: dict(zip(names, row, strict=True)) for row in (users_qs.select_for_update() if lock else users_qs)
        }
        by_id: dict[type[ProfileBase], dict[int, dict[str, Any]]] = {}
        by_user: dict[type[ProfileBase], dict[int, dict[str, Any]]] = {}
        for model, fields in PROFILE_FIELDS.items():
            names = ("id", "user_id", *fields)
            found = list(model.objects.filter(user_id__gte=id_range[0], user_id__lte=id_range[1]).values(*names))
            source_ids = [a.profile_id for a in accounts if a.model is model and a.profile_id is not None]
            if source_ids:  # who holds the monolith's profile ids, whoever they belong to
                found += model.objects.filter(_among(F("pk"), source_ids)).values(*names)
            by_id[model] = {p["id"]: p for p in found}
            by_user[model] = {p["user_id"]: p for p in found}
        return cls(users, by_id, by_user)


class _Owners:
    """Who holds each username and e-mail in the target (lower-cased): loaded once, kept current as the
    import goes, so clash checks cost no query per batch. An account the live service creates meanwhile is
    still stopped by the database's unique constraints (reported as database_refused)."""

    def __init__(self) -> None:
        self.usernames: dict[str, int] = {}
        self.emails: dict[str, int] = {}
        for pk, username, email in CustomUser.objects.values_list("pk", Lower("username"), Lower("email")):
            self.usernames[username] = pk
            if email:
                self.emails[email] = pk

    def record(self, user_id: int, *, old: tuple[str, str] | None, new: tuple[str, str]) -> None:
        for mapping, old_key, new_key in (
            (self.usernames, old and old[0], new[0]),
            (self.emails, old and old[1], new[1]),
        ):
            if old_key and old_key != new_key and mapping.get(old_key) == user_id:
                del mapping[old_key]
            if new_key:
                mapping[new_key] = user_id


# --- Planning and writing a batch -----------------------------------------------------------------


@dataclass
class _Plan:
    user_id: int
    model: type[ProfileBase]
    new_user: dict[str, Any] | None = None
    user_update: dict[str, Any] | None = None
    user_fields: set[str] = field(default_factory=set)
    new_profile: dict[str, Any] | None = None
    profile_update: dict[str, Any] | None = None
    profile_fields: set[str] = field(default_factory=set)
    end_sessions_reason: str = ""
    old_keys: tuple[str, str] | None = None  # the target's lower-cased username and e-mail before an update

    @property
    def outcome(self) -> str:
        if self.new_user is not None:
            return "created"
        if self.user_update is not None or self.new_profile is not None or self.profile_update is not None:
            return "updated"
        return "unchanged"


class _ProfileIds:
    """Ids for profiles the import creates itself: always above every id the source uses."""

    def __init__(self, floors: dict[type[ProfileBase], int]) -> None:
        self.floors = floors
        self.next: dict[type[ProfileBase], int] = {}

    def allocate(self, model: type[ProfileBase], count: int) -> list[int]:
        if _postgresql():  # the sequence was moved above the source's ids up front
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [connection.ops.quote_name(model._meta.db_table), count],
                )
                return [row[0] for row in cursor.fetchall()]
        if model not in self.next:
            current = model.objects.aggregate(top=Max("pk"))["top"] or 0
            self.next[model] = max(self.floors[model], current) + 1
        first = self.next[model]
        self.next[model] += count
        return list(range(first, first + count))


def _rows_insert(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """Insert new rows: COPY on PostgreSQL (no per-value ORM work), bulk_create elsewhere."""
    if not rows:
        return
    if not _postgresql():
        model.objects.bulk_create([model(**row) for row in rows])
        return
    now = timezone.now()
    fields = model._meta.concrete_fields
    defaults = {
        f.attname: now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
        for f in fields
    }
    names = [f.attname for f in fields]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            merged = defaults | row
            copy.write_row([merged[name] for name in names])


def _rows_update(model: type[models.Model], rows: list[dict[str, Any]], fields: set[str]) -> None:
    instances = []
    for row in rows:
        instance = model(**row)
        instance._state.adding = False
        instances.append(instance)
    model.objects.bulk_update(instances, sorted(fields | {"updated_at"}), batch_size=BULK_UPDATE_ROWS)


def _sequences_advance(floors: dict[type[models.Model], int]) -> None:
    """Move each PostgreSQL id sequence above the source's ids (never backwards) before writing."""
    with connection.cursor() as cursor:
        for model, floor in floors.items():
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), GREATEST(%s, 1, "  # noqa: S608
                f"(SELECT COALESCE(MAX(id), 0) FROM {table}), "
                f"COALESCE(pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')::regclass), 0)))",
                [table, floor, table],
            )


def _tables_analyze() -> None:
    """Refresh PostgreSQL's row counts, which an import that grows the tables many times over outdates.

    Only the key columns: the planner then knows the tables' sizes and keeps the lookups on their indexes,
    without the cost of sampling every expression index (the trigram search indexes make that slow).
    """
    quote = connection.ops.quote_name
    tables = [f"{quote(CustomUser._meta.db_table)} (id)"]
    tables += [f"{quote(model._meta.db_table)} (id, user_id)" for model in PROFILE_MODELS.values()]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(tables)}")


def _sequences_reset() -> list[str]:
    tables = [CustomUser, *PROFILE_MODELS.values()]
    statements = connection.ops.sequence_reset_sql(no_style(), tables)
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    return [model._meta.db_table for model in tables] if statements else []


class _Importer:
    def __init__(self, *, source: _MonolithSource, result: MonolithImportResult, notify: bool) -> None:
        self.source = source
        self.result = result
        self.notify = notify
        self.preferred_algorithm = get_hasher("default").algorithm
        self.algorithms = frozenset(hasher.algorithm for hasher in get_hashers())
        self.excluded: set[int] = set()
        self.owners: _Owners
        self.profile_ids = _ProfileIds({model: source.max_id(table) for model, table in PROFILE_TABLES.items()})

    def check_source(self) -> None:
        """First pass: bad user types, duplicates (the lowest id wins), profiles without a user."""
        usernames: dict[str, int] = {}
        emails: dict[str, int] = {}
        for uid, username, email, user_type in self.source.user_keys():
            self.result.total_users += 1
            if _user_type(user_type) is None:
                message = f"user_type {user_type!r} is not 1 (HOD), 2 (Staff) or 3 (Student); row rejected"
                self.result.add(ImportProblem(USER_TYPE_INVALID, ERROR, USERS_TABLE, uid, message))
                self.excluded.add(uid)
                continue
            username_key, email_key = ("" if username is None else str(username)).lower(), _email_key(email)
            if username_key and username_key in usernames:
                first = usernames[username_key]
                message = f"username {username!r} already used by user id={first} (case-insensitively); skipped"
                self.result.add(ImportProblem(USERNAME_DUPLICATE, SKIPPED, USERS_TABLE, uid, message))
                self.excluded.add(uid)
            elif email_key and email_key in emails:
                first = emails[email_key]
                message = f"e-mail {str(email).strip()!r} already used by user id={first} (case-insensitively); skipped"
                self.result.add(ImportProblem(EMAIL_DUPLICATE, SKIPPED, USERS_TABLE, uid, message))
                self.excluded.add(uid)
            else:
                if username_key:
                    usernames[username_key] = uid
                if email_key:
                    emails[email_key] = uid
        for model, table in PROFILE_TABLES.items():
            for row in self.source.orphan_profiles(model):
                message = f"profile of user id={row['admin_id']}, who does not exist; skipped"
                self.result.add(ImportProblem(PROFILE_ORPHAN, SKIPPED, table, row["id"], message))

    def accounts(self, rows: list[sqlite3.Row], problems: list[ImportProblem]) -> list[_Account]:
        """Map a batch of users and join their profile rows; report rows that do not fit."""
        profiles: dict[tuple[type[ProfileBase], int], list[sqlite3.Row]] = defaultdict(list)
        for model in PROFILE_TABLES:
            for row in self.source.profiles_between(model, rows[0]["id"], rows[-1]["id"]):
                profiles[model, row["admin_id"]].append(row)
        accounts = []
        for row in rows:
            uid = row["id"]
            if uid in self.excluded:
                continue  # reported by check_source(); its profile rows go with it
            values, user_problems = _user_values(row, algorithms=self.algorithms)
            problems.extend(user_problems)
            if values is None:
                continue
            own_model = PROFILE_MODELS[values["user_type"]]
            for model, table in PROFILE_TABLES.items():
                found = profiles.get((model, uid), [])
                for other in found[1:] if model is own_model else found:
                    if model is own_model:
                        message = (
                            f"second {model.__name__} profile of user id={uid} (first is id={found[0]['id']}); skipped"
                        )
                        problems.append(ImportProblem(PROFILE_DUPLICATE, SKIPPED, table, other["id"], message))
                    else:
                        role = UserType(values["user_type"]).label
                        message = f"{model.__name__} profile of user id={uid}, who is a {role}; skipped"
                        problems.append(ImportProblem(PROFILE_TYPE_MISMATCH, SKIPPED, table, other["id"], message))
            own = profiles.get((own_model, uid))
            profile_values: dict[str, Any] | None = {}
            if own:
                profile_values, profile_problems = _profile_values(own_model, own[0])
                problems.extend(profile_problems)
                if profile_values is None:
                    continue
            accounts.append(_Account(uid, values, own_model, own[0]["id"] if own else None, profile_values))
        return accounts

    def plan(self, account: _Account, target: _Target, problems: list[ImportProblem]) -> _Plan | None:
        """Decide what to write for one account, or report why it is refused (None)."""
        uid, values, model = account.user_id, account.values, account.model
        current = target.users.get(uid)

        def refuse(kind: str, message: str) -> None:
            problems.append(ImportProblem(kind, ERROR, USERS_TABLE, uid, f"{message}; not imported"))

        if current is not None:
            same_name = current["username"].lower() == values["username"].lower()
            if not same_name and current["date_joined"] != values["date_joined"]:
                return refuse(ID_CONFLICT, f"the target's user id={uid} is {current['username']!r}, another person")
            if current["user_type"] != values["user_type"]:
                old, new = UserType(current["user_type"]).label, UserType(values["user_type"]).label
                return refuse(USER_TYPE_CHANGED, f"imported as {old}, the monolith now says {new}")
        owner = self.owners.usernames.get(values["username"].lower(), uid)
        if owner != uid:
            return refuse(USERNAME_TAKEN, f"username {values['username']!r} belongs to the target's user id={owner}")
        owner = self.owners.emails.get(values["email"].lower(), uid) if values["email"] else uid
        if owner != uid:
            return refuse(EMAIL_TAKEN, f"e-mail {values['email']!r} belongs to the target's user id={owner}")
        profile = target.profiles_by_user[model].get(uid)
        if account.profile_id is not None:
            holder = target.profiles_by_id[model].get(account.profile_id)
            if holder is not None and holder["user_id"] != uid:
                message = (
                    f"{model.__name__} id={account.profile_id} belongs to the target's user id={holder['user_id']}"
                )
                return refuse(PROFILE_CONFLICT, message)
            if profile is not None and profile["id"] != account.profile_id:
                message = (
                    f"has {model.__name__} id={profile['id']} in the target, the monolith's is id={account.profile_id}"
                )
                return refuse(PROFILE_CONFLICT, message)
        else:
            done = "kept the target's" if profile is not None else "created an empty one"
            message = (
                f"{UserType(values['user_type']).label} without a {model.__name__} profile in the monolith; {done}"
            )
            problems.append(ImportProblem(PROFILE_MISSING, WARNING, USERS_TABLE, uid, message))

        plan = _Plan(user_id=uid, model=model)
        if current is None:
            plan.new_user = {"id": uid, **values}
        else:
            self._user_changes(plan, current, values)
        if profile is None:
            plan.new_profile = {"id": account.profile_id, "user_id": uid, **account.profile_values}
        elif account.profile_id is not None:
            plan.profile_fields = {n for n in PROFILE_FIELDS[model] if profile[n] != account.profile_values[n]}
            if plan.profile_fields:
                plan.profile_update = {**profile, **account.profile_values}
        return plan

    def _user_changes(self, plan: _Plan, current: dict[str, Any], values: dict[str, Any]) -> None:
        wanted = dict(values)
        wanted["password"] = _password_after_import(
            values["password"], current["password"], preferred=self.preferred_algorithm
        )
        if current["last_login"] and (values["last_login"] is None or current["last_login"] > values["last_login"]):
            wanted["last_login"] = current["last_login"]  # logins to this service are newer; keep them
        plan.user_fields = {name for name in USER_FIELDS if current[name] != wanted[name]}
        if not plan.user_fields:
            return
        wanted["id"], wanted["deactivated_at"] = plan.user_id, current["deactivated_at"]
        if "is_active" in plan.user_fields:
            wanted["deactivated_at"] = None if wanted["is_active"] else timezone.now()
            plan.user_fields.add("deactivated_at")
            if not wanted["is_active"]:
                plan.end_sessions_reason = SessionEndReason.DEACTIVATED
        if "password" in plan.user_fields and not plan.end_sessions_reason:
            plan.end_sessions_reason = SessionEndReason.PASSWORD_CHANGED
        plan.user_update = wanted
        plan.old_keys = (current["username"].lower(), current["email"].lower())

    def write(self, plans: list[_Plan]) -> int:
        """Write the planned rows with bulk statements; returns the number of sessions ended."""
        now = timezone.now()
        _rows_insert(CustomUser, [p.new_user for p in plans if p.new_user is not None])
        updates = [p for p in plans if p.user_update is not None]
        if updates:
            fields = set().union(*(p.user_fields for p in updates))
            _rows_update(CustomUser, [p.user_update | {"updated_at": now} for p in updates], fields)
        for model in PROFILE_FIELDS:
            new = [p.new_profile for p in plans if p.model is model and p.new_profile is not None]
            unnumbered = [row for row in new if row["id"] is None]
            if unnumbered:
                for row, pid in zip(unnumbered, self.profile_ids.allocate(model, len(unnumbered)), strict=True):
                    row["id"] = pid
            _rows_insert(model, new)
            changed = [p for p in plans if p.model is model and p.profile_update is not None]
            if changed:
                fields = set().union(*(p.profile_fields for p in changed))
                _rows_update(model, [p.profile_update | {"updated_at": now} for p in changed], fields)
        ended = 0
        for plan in plans:
            if plan.end_sessions_reason:
                user = CustomUser(pk=plan.user_id)
                ended += len(sessions_end_for_user(user=user, reason=plan.end_sessions_reason))
            if plan.user_fields & PUBLIC_USER_FIELDS:
                user_snapshot_invalidate(user_id=plan.user_id)
        created = [p.user_id for p in plans if p.new_user is not None]
        if self.notify and created:
            monolith_import_notify(user_ids=created)
        return ended

    def run_batch(self, rows: list[sqlite3.Row]) -> None:
        """Plan and write one batch in one transaction; if the database refuses it, retry row by row."""
        problems: list[ImportProblem] = []
        accounts = self.accounts(rows, problems)
        plans: list[_Plan] = []
        ended = 0
        if accounts:
            try:
                with transaction.atomic():
                    target = _Target.load(accounts, lock=not self.result.dry_run)
                    plans = [p for a in accounts if (p := self.plan(a, target, problems)) is not None]
                    if not self.result.dry_run:
                        ended = self.write(plans)
            except (IntegrityError, DataError):
                if not plans:
                    raise
                plans, ended = self._write_one_by_one(plans, problems)
        for problem in problems:
            self.result.add(problem)
        for plan in plans:
            row = plan.new_user if plan.new_user is not None else plan.user_update
            if row is not None:
                self.owners.record(plan.user_id, old=plan.old_keys, new=(row["username"].lower(), row["email"].lower()))
            setattr(self.result, plan.outcome, getattr(self.result, plan.outcome) + 1)
            self.result.profiles_created += plan.new_profile is not None
            self.result.profiles_updated += plan.profile_update is not None
        self.result.sessions_ended += ended

    def _write_one_by_one(self, plans: list[_Plan], problems: list[ImportProblem]) -> tuple[list[_Plan], int]:
        written, ended = [], 0
        for plan in plans:
            try:
                with transaction.atomic():
                    ended += self.write([plan])
            except (IntegrityError, DataError) as exc:
                reason = str(exc).strip().splitlines()[0]
                message = f"the database refused the row ({reason}); not imported"
                problems.append(ImportProblem(DATABASE_REFUSED, ERROR, USERS_TABLE, plan.user_id, message))
            else:
                written.append(plan)
        return written, ended


def monolith_import(
    *,
    path: str | Path,
    dry_run: bool = False,
    batch_size: int = 1000,
    notify: bool = False,
    progress: Callable[[BatchProgress], None] | None = None,
) -> MonolithImportResult:
    """Import the monolith's users and profiles with their ids and hashes; running it again changes nothing."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    result = MonolithImportResult(source=str(path), dry_run=dry_run, batch_size=batch_size)
    source = _MonolithSource(path)
    try:
        importer = _Importer(source=source, result=result, notify=notify and not dry_run)
        importer.check_source()
        importer.owners = _Owners()
        if _postgresql() and not dry_run:
            floors = {CustomUser: source.max_id(USERS_TABLE)}
            floors |= {model: source.max_id(table) for model, table in PROFILE_TABLES.items()}
            _sequences_advance(floors)
        last_id, processed, analyze_at = 0, 0, ANALYZE_FIRST_AT
        while rows := source.users_after(last_id, batch_size):
            importer.run_batch(rows)
            last_id, processed = rows[-1]["id"], processed + len(rows)
            result.batches += 1
            if _postgresql() and not dry_run and result.created >= analyze_at:
                _tables_analyze()  # fresh statistics keep the per-batch lookups on their indexes
                analyze_at *= 2
            if progress is not None:
                elapsed = time.perf_counter() - started
                progress(BatchProgress(result.batches, rows[0]["id"], last_id, processed, result.total_users, elapsed))
        if not dry_run:
            result.sequences_reset = _sequences_reset()
    finally:
        source.close()
    if notify:
        result.notify_message = "--notify: announcements are not available yet (no outbox in this service); none sent."
    result.problems.sort(key=lambda p: (p.kind, p.table, p.row_id or 0))
    result.seconds = time.perf_counter() - started
    return result
