"""Import users and role profiles from the monolith's SQLite database, keeping ids and password hashes."""

import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.contrib.auth.hashers import get_hasher, identify_hasher, is_password_usable
from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.core.validators import validate_email
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from users.models import PROFILE_MODELS, AdminHOD, CustomUser, Gender, ProfileBase, SessionEndReason, Staff, Student
from users.models import UserType as UT
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
# Target fields the import owns; they are compared on every run to tell "unchanged" from "updated".
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
PUBLIC_USER_FIELDS = frozenset({"username", "email", "first_name", "last_name", "user_type", "is_active", "date_joined"})
GENDERS = {"m": Gender.MALE, "male": Gender.MALE, "f": Gender.FEMALE, "female": Gender.FEMALE}
GENDERS |= {"o": Gender.OTHER, "other": Gender.OTHER}
MAX_INT = 2_147_483_647
BULK_UPDATE_ROWS = 100  # bulk_update builds CASE WHEN per row; small statements keep it linear

ERROR, SKIPPED, WARNING = "error", "skipped", "warning"

# Problem kinds: what went wrong with a source row, and what the import did about it.
USER_TYPE_INVALID = "user_type_invalid"  # error: user_type not "1"/"2"/"3"; row rejected
VALUE_INVALID = "value_invalid"  # error: a value the target cannot hold faithfully; account rejected
ID_CONFLICT = "id_conflict"  # error: the target holds a different person under this id; not overwritten
USER_TYPE_CHANGED = "user_type_changed"  # error: the role changed since the last import; left as it is
USERNAME_TAKEN = "username_taken"  # error: another target user has this username (case-insensitively)
EMAIL_TAKEN = "email_taken"  # error: another target user has this e-mail (case-insensitively)
PROFILE_CONFLICT = "profile_conflict"  # error: the profile id or the user's profile slot is held differently
DATABASE_REFUSED = "database_refused"  # error: the database refused the row (e.g. a concurrent write)
EMAIL_DUPLICATE = "email_duplicate"  # skipped: same e-mail as a lower id in the source
USERNAME_DUPLICATE = "username_duplicate"  # skipped: same username (case-insensitively) as a lower id
PROFILE_ORPHAN = "profile_orphan"  # skipped: profile whose user does not exist
PROFILE_TYPE_MISMATCH = "profile_type_mismatch"  # skipped: profile table does not match the user's type
PROFILE_DUPLICATE = "profile_duplicate"  # skipped: a second profile of the same user in the same table
PROFILE_MISSING = "profile_missing"  # warning: user without a profile of its type; an empty one is created
EMAIL_EMPTY = "email_empty"  # warning: imported with an empty e-mail (no reset or verification mail possible)
EMAIL_INVALID = "email_invalid"  # warning: imported as it is, but not a valid address
GENDER_UNKNOWN = "gender_unknown"  # warning: free text mapped to "O"
PASSWORD_UNKNOWN = "password_unknown"  # warning: hash format this service cannot verify; a reset is needed


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
    """Counts of one run: accounts created/updated/unchanged, rows skipped or rejected, and every problem."""

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


class _BadValue(Exception):
    pass


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

    def users(self) -> Iterator[sqlite3.Row]:
        yield from self.db.execute(f'SELECT {USER_COLUMNS} FROM "{USERS_TABLE}" ORDER BY id')  # noqa: S608

    def users_after(self, last_id: int, limit: int) -> list[sqlite3.Row]:
        sql = f'SELECT {USER_COLUMNS} FROM "{USERS_TABLE}" WHERE id > ? ORDER BY id LIMIT ?'  # noqa: S608
        return self.db.execute(sql, (last_id, limit)).fetchall()

    def profiles_between(self, model: type[ProfileBase], first_id: int, last_id: int) -> list[sqlite3.Row]:
        sql = f'SELECT {PROFILE_COLUMNS[model]} FROM "{PROFILE_TABLES[model]}" WHERE admin_id BETWEEN ? AND ? ORDER BY id'  # noqa: S608, E501
        return self.db.execute(sql, (first_id, last_id)).fetchall()

    def orphan_profiles(self, model: type[ProfileBase]) -> list[sqlite3.Row]:
        sql = (
            f'SELECT p.id, p.admin_id FROM "{PROFILE_TABLES[model]}" p '  # noqa: S608
            f'WHERE NOT EXISTS (SELECT 1 FROM "{USERS_TABLE}" u WHERE u.id = p.admin_id) ORDER BY p.id'
        )
        return self.db.execute(sql).fetchall()


# --- Mapping source values to the service's ------------------------------------------------------


def _user_type(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
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
    return parsed.replace(tzinfo=UTC) if timezone.is_naive(parsed) else parsed.astimezone(UTC)


def _text(model: type, name: str, value: Any, *, required: bool = False) -> str:
    text = "" if value is None else str(value)
    if required and not text.strip():
        raise _BadValue(f"{name} is empty")
    max_length = model._meta.get_field(name).max_length
    if max_length and len(text) > max_length:
        raise _BadValue(f"{name} is {len(text)} characters long; the service allows {max_length}")
    return text


def _reference_id(name: str, value: Any) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not text.isdigit() or int(text) > MAX_INT:
        raise _BadValue(f"{name} {value!r} is not a valid id")
    return int(text)


def _user_values(row: sqlite3.Row) -> tuple[dict[str, Any] | None, list[ImportProblem]]:
    """The target field values of one source user, or None (rejected), plus the problems found."""
    uid = row["id"]

    def problem(kind: str, severity: str, message: str) -> ImportProblem:
        return ImportProblem(kind, severity, USERS_TABLE, uid, message)

    user_type = _user_type(row["user_type"])
    if user_type is None:
        message = f"user_type {row['user_type']!r} is not 1 (HOD), 2 (Staff) or 3 (Student); row rejected"
        return None, [problem(USER_TYPE_INVALID, ERROR, message)]
    try:
        email = CustomUser.objects.normalize_email(_text(CustomUser, "email", row["email"])).strip()
        values = {
            "username": _text(CustomUser, "username", row["username"], required=True),
            "email": email,
            "password": _text(CustomUser, "password", row["password"]),
            "first_name": _text(CustomUser, "first_name", row["first_name"]),
            "last_name": _text(CustomUser, "last_name", row["last_name"]),
            "user_type": user_type,
            "is_active": _bool("is_active", row["is_active"]),
            # HODs use the Django admin, as user_create() makes them.
            "is_staff": True if user_type == UT.HOD else _bool("is_staff", row["is_staff"]),
            "is_superuser": _bool("is_superuser", row["is_superuser"]),
            "date_joined": _datetime("date_joined", row["date_joined"], required=True),
            "last_login": _datetime("last_login", row["last_login"]),
        }
    except _BadValue as exc:
        return None, [problem(VALUE_INVALID, ERROR, f"{exc}; row rejected")]
    problems = []
    if not email:
        problems.append(problem(EMAIL_EMPTY, WARNING, "empty e-mail; imported without one (no mail can reach them)"))
    else:
        try:
            validate_email(email)
        except ValidationError:
            problems.append(problem(EMAIL_INVALID, WARNING, f"e-mail {email!r} is not a valid address; imported as is"))
    password = values["password"]
    if is_password_usable(password):
        try:
            identify_hasher(password)
        except ValueError:
            problems.append(
                problem(PASSWORD_UNKNOWN, WARNING, "password hash format not recognised; the user must reset it")
            )
    return values, problems


def _profile_values(
    model: type[ProfileBase], row: sqlite3.Row
) -> tuple[dict[str, Any] | None, list[ImportProblem]]:
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
        message = f"{exc}; user id={row['admin_id']} and this profile rejected"
        return None, [ImportProblem(VALUE_INVALID, ERROR, table, pid, message)]
    raw_gender = "" if row["gender"] is None else str(row["gender"]).strip()
    values["gender"] = GENDERS.get(raw_gender.lower(), Gender.OTHER) if raw_gender else ""
    if raw_gender and raw_gender.lower() not in GENDERS:
        message = f"gender {raw_gender!r} of user id={row['admin_id']} is not male/female; imported as 'O'"
        return values, [ImportProblem(GENDER_UNKNOWN, WARNING, table, pid, message)]
    return values, []


def _algorithm(password_hash: str) -> str:
    return password_hash.split("$", 1)[0] if "$" in password_hash else ""


def _password_after_import(source: str, target: str, *, preferred: str) -> str:
    """The source hash wins, unless the target holds a hash this service made (upgrade on login, new password)."""
    if source == target or (_algorithm(target) == preferred and _algorithm(source) != preferred):
        return target
    return source


def monolith_import_notify(*, user_ids: list[int]) -> bool:
    """Hook for announcing imported accounts. There is no outbox yet, so nothing is sent; returns False."""
    return False


# --- Planning and writing one batch ---------------------------------------------------------------


@dataclass
class _Plan:
    user_id: int
    new_user: CustomUser | None = None
    changed_user: CustomUser | None = None
    user_fields: set[str] = field(default_factory=set)
    new_profile: ProfileBase | None = None
    changed_profile: ProfileBase | None = None
    profile_fields: set[str] = field(default_factory=set)
    end_sessions_reason: str = ""

    @property
    def outcome(self) -> str:
        if self.new_user is not None:
            return "created"
        if self.changed_user is not None or self.new_profile is not None or self.changed_profile is not None:
            return "updated"
        return "unchanged"


@dataclass
class _Account:
    user_id: int
    values: dict[str, Any]
    model: type[ProfileBase]
    profile_id: int | None
    profile_values: dict[str, Any]


class _ProfileIds:
    """Ids for profiles the import creates itself, always above every source id (no collision later)."""

    def __init__(self, floors: dict[type[ProfileBase], int], *, use_sequences: bool) -> None:
        self.use_sequences = use_sequences
        self.next: dict[type[ProfileBase], int] = {}
        if not use_sequences:
            for model, floor in floors.items():
                current = model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
                self.next[model] = max(floor, current) + 1

    def allocate(self, model: type[ProfileBase]) -> int | None:
        if self.use_sequences:
            return None  # the sequence was moved above the source's ids before the import started
        self.next[model] += 1
        return self.next[model] - 1


def _sequences_advance(floors: dict[type, int]) -> None:
    """On PostgreSQL, move each id sequence above the source's ids, never backwards, before writing."""
    with connection.cursor() as cursor:
        for model, floor in floors.items():
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), GREATEST(%s, 1, "  # noqa: S608
                f"(SELECT COALESCE(MAX(id), 0) FROM {table}), "
                f"COALESCE(pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')::regclass), 0)))",
                [table, floor, table],
            )


def _sequences_reset() -> list[str]:
    models = [CustomUser, *PROFILE_MODELS.values()]
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    return [model._meta.db_table for model in models] if statements else []


class _Importer:
    def __init__(self, *, source: _MonolithSource, result: MonolithImportResult, notify: bool) -> None:
        self.source = source
        self.result = result
        self.notify = notify
        self.preferred_algorithm = get_hasher("default").algorithm
        self.excluded: set[int] = set()

    def check_source(self) -> None:
        """Source-only checks over every user: rejected rows and duplicates (first by id wins), orphans."""
        emails: dict[str, int] = {}
        usernames: dict[str, int] = {}
        for row in self.source.users():
            self.result.total_users += 1
            uid = row["id"]
            values, problems = _user_values(row)
            for problem in problems:
                self.result.add(problem)
            if values is None:
                self.excluded.add(uid)
                continue
            username_key, email_key = values["username"].lower(), values["email"].lower()
            if username_key in usernames:
                message = f"username {values['username']!r} already used by user id={usernames[username_key]} (case-insensitively); skipped"  # noqa: E501
                self.result.add(ImportProblem(USERNAME_DUPLICATE, SKIPPED, USERS_TABLE, uid, message))
                self.excluded.add(uid)
            elif email_key and email_key in emails:
                message = f"e-mail {values['email']!r} already used by user id={emails[email_key]} (case-insensitively); skipped"  # noqa: E501
                self.result.add(ImportProblem(EMAIL_DUPLICATE, SKIPPED, USERS_TABLE, uid, message))
                self.excluded.add(uid)
            else:
                usernames[username_key] = uid
                if email_key:
                    emails[email_key] = uid
        for model, table in PROFILE_TABLES.items():
            for row in self.source.orphan_profiles(model):
                message = f"profile of user id={row['admin_id']}, which does not exist; skipped"
                self.result.add(ImportProblem(PROFILE_ORPHAN, SKIPPED, table, row["id"], message))

    def accounts(self, rows: list[sqlite3.Row], problems: list[ImportProblem]) -> list[_Account]:
        """Join a batch of users with their profile rows; report profiles that do not fit."""
        first, last = rows[0]["id"], rows[-1]["id"]
        profiles: dict[tuple[type[ProfileBase], int], list[sqlite3.Row]] = defaultdict(list)
        for model in PROFILE_TABLES:
            for row in self.source.profiles_between(model, first, last):
                profiles[model, row["admin_id"]].append(row)
        accounts = []
        for row in rows:
            uid = row["id"]
            if uid in self.excluded:
                continue  # reported by check_source(); its profile rows go with it
            values, _ = _user_values(row)  # problems already reported by check_source()
            assert values is not None  # noqa: S101 - excluded otherwise
            own_model = PROFILE_MODELS[values["user_type"]]
            for model, table in PROFILE_TABLES.items():
                rows_of_model = profiles.get((model, uid), [])
                extra = rows_of_model[1:] if model is own_model else rows_of_model
                for other in extra:
                    if model is own_model:
                        message = f"second {model.__name__} profile of user id={uid} (first is id={rows_of_model[0]['id']}); skipped"  # noqa: E501
                        problems.append(ImportProblem(PROFILE_DUPLICATE, SKIPPED, table, other["id"], message))
                    else:
                        role = UT(values["user_type"]).label
                        message = f"{model.__name__} profile of user id={uid}, who is a {role}; skipped"
                        problems.append(ImportProblem(PROFILE_TYPE_MISMATCH, SKIPPED, table, other["id"], message))
            own_rows = profiles.get((own_model, uid), [])
            profile_values: dict[str, Any] | None = {}
            profile_id = None
            if own_rows:
                profile_id = own_rows[0]["id"]
                profile_values, profile_problems = _profile_values(own_model, own_rows[0])
                problems.extend(profile_problems)
                if profile_values is None:
                    continue
            accounts.append(_Account(uid, values, own_model, profile_id, profile_values or {}))
        return accounts

    def plan(self, accounts: list[_Account], problems: list[ImportProblem], ids: _ProfileIds) -> list[_Plan]:
        """Compare a batch with the target (a fixed number of queries) and decide what to write."""
        user_ids = [a.user_id for a in accounts]
        lock = not self.result.dry_run
        existing_qs = CustomUser.objects.filter(pk__in=user_ids).only(*USER_FIELDS, "deactivated_at")
        existing = {u.pk: u for u in (existing_qs.select_for_update() if lock else existing_qs)}
        username_owner = dict(
            CustomUser.objects.annotate(key=Lower("username"))
            .filter(key__in={a.values["username"].lower() for a in accounts})
            .values_list("key", "pk")
        )
        emails = {a.values["email"].lower() for a in accounts if a.values["email"]}
        email_owner = dict(
            CustomUser.objects.exclude(email="")
            .annotate(key=Lower("email"))
            .filter(key__in=emails)
            .values_list("key", "pk")
        )
        by_id: dict[type[ProfileBase], dict[int, ProfileBase]] = {}
        by_user: dict[type[ProfileBase], dict[int, ProfileBase]] = {}
        for model, fields in PROFILE_FIELDS.items():
            mine = [a for a in accounts if a.model is model]
            if not mine:
                by_id[model], by_user[model] = {}, {}
                continue
            source_ids = [a.profile_id for a in mine if a.profile_id is not None]
            qs = model.objects.filter(Q(pk__in=source_ids) | Q(user_id__in=[a.user_id for a in mine]))
            found = list(qs.only("pk", "user_id", *fields))
            by_id[model] = {p.pk: p for p in found}
            by_user[model] = {p.user_id: p for p in found}
        plans = []
        for account in accounts:
            plan = self._plan_account(account, existing, username_owner, email_owner, by_id, by_user, problems, ids)
            if plan is not None:
                plans.append(plan)
        return plans

    def _plan_account(
        self,
        account: _Account,
        existing: dict[int, CustomUser],
        username_owner: dict[str, int],
        email_owner: dict[str, int],
        by_id: dict[type[ProfileBase], dict[int, ProfileBase]],
        by_user: dict[type[ProfileBase], dict[int, ProfileBase]],
        problems: list[ImportProblem],
        ids: _ProfileIds,
    ) -> _Plan | None:
        uid, values, model = account.user_id, account.values, account.model
        target = existing.get(uid)

        def reject(kind: str, message: str) -> None:
            problems.append(ImportProblem(kind, ERROR, USERS_TABLE, uid, f"{message}; not imported"))

        if target is not None:
            same_name = target.username.lower() == values["username"].lower()
            if not same_name and target.date_joined != values["date_joined"]:
                return reject(ID_CONFLICT, f"the target's user id={uid} is {target.username!r}, another person")
            if target.user_type != values["user_type"]:
                old, new = UT(target.user_type).label, UT(values["user_type"]).label
                return reject(USER_TYPE_CHANGED, f"was imported as {old}, the monolith now says {new}")
        owner = username_owner.get(values["username"].lower())
        if owner is not None and owner != uid:
            return reject(USERNAME_TAKEN, f"username {values['username']!r} belongs to the target's user id={owner}")
        owner = email_owner.get(values["email"].lower()) if values["email"] else None
        if owner is not None and owner != uid:
            return reject(EMAIL_TAKEN, f"e-mail {values['email']!r} belongs to the target's user id={owner}")
        profile = by_user[model].get(uid)
        if account.profile_id is not None:
            holder = by_id[model].get(account.profile_id)
            if holder is not None and holder.user_id != uid:
                message = f"{model.__name__} id={account.profile_id} belongs to the target's user id={holder.user_id}"
                return reject(PROFILE_CONFLICT, message)
            if profile is not None and profile.pk != account.profile_id:
                message = f"already has {model.__name__} id={profile.pk} in the target, the monolith's is id={account.profile_id}"  # noqa: E501
                return reject(PROFILE_CONFLICT, message)
        else:
            what = "kept its existing one" if profile is not None else "created an empty one"
            message = f"{UT(values['user_type']).label} without a {model.__name__} profile in the monolith; {what}"
            problems.append(ImportProblem(PROFILE_MISSING, WARNING, USERS_TABLE, uid, message))

        plan = _Plan(user_id=uid)
        now = timezone.now()
        if target is None:
            plan.new_user = CustomUser(id=uid, **values)
        else:
            self._user_changes(plan, target, values, now)
        if profile is None:
            profile_id = account.profile_id if account.profile_id is not None else ids.allocate(model)
            plan.new_profile = model(id=profile_id, user_id=uid, **account.profile_values)
        elif account.profile_id is not None:
            for name in PROFILE_FIELDS[model]:
                if getattr(profile, name) != account.profile_values[name]:
                    setattr(profile, name, account.profile_values[name])
                    plan.profile_fields.add(name)
            if plan.profile_fields:
                profile.updated_at = now
                plan.changed_profile = profile
        return plan

    def _user_changes(self, plan: _Plan, target: CustomUser, values: dict[str, Any], now: datetime) -> None:
        was_active = target.is_active
        wanted = dict(values)
        wanted["password"] = _password_after_import(
            values["password"], target.password, preferred=self.preferred_algorithm
        )
        if target.last_login and (values["last_login"] is None or target.last_login > values["last_login"]):
            wanted["last_login"] = target.last_login  # logins in this service are newer; keep them
        for name in USER_FIELDS:
            if getattr(target, name) != wanted[name]:
                setattr(target, name, wanted[name])
                plan.user_fields.add(name)
        if not plan.user_fields:
            return
        if "is_active" in plan.user_fields:
            target.deactivated_at = None if target.is_active else now
            plan.user_fields.add("deactivated_at")
        if was_active and not target.is_active:
            plan.end_sessions_reason = SessionEndReason.DEACTIVATED
        elif "password" in plan.user_fields:
            plan.end_sessions_reason = SessionEndReason.PASSWORD_CHANGED
        target.updated_at = now
        plan.changed_user = target

    def write(self, plans: list[_Plan]) -> int:
        """Write planned changes with bulk statements; returns the number of sessions ended."""
        new_users = [p.new_user for p in plans if p.new_user is not None]
        CustomUser.objects.bulk_create(new_users)
        changed = [p.changed_user for p in plans if p.changed_user is not None]
        if changed:
            fields = set().union(*(p.user_fields for p in plans)) | {"updated_at"}
            CustomUser.objects.bulk_update(changed, sorted(fields), batch_size=BULK_UPDATE_ROWS)
        for model in PROFILE_FIELDS:
            model.objects.bulk_create([p.new_profile for p in plans if isinstance(p.new_profile, model)])
            changed_profiles = [p for p in plans if isinstance(p.changed_profile, model)]
            if changed_profiles:
                fields = set().union(*(p.profile_fields for p in changed_profiles)) | {"updated_at"}
                profiles = [p.changed_profile for p in changed_profiles]
                model.objects.bulk_update(profiles, sorted(fields), batch_size=BULK_UPDATE_ROWS)
        ended = 0
        for plan in plans:
            if plan.end_sessions_reason and plan.changed_user is not None:
                ended += len(sessions_end_for_user(user=plan.changed_user, reason=plan.end_sessions_reason))
            if plan.user_fields & PUBLIC_USER_FIELDS:
                user_snapshot_invalidate(user_id=plan.user_id)
        if self.notify and new_users:
            monolith_import_notify(user_ids=[u.pk for u in new_users])
        return ended

    def run_batch(self, rows: list[sqlite3.Row], ids: _ProfileIds) -> None:
        """Plan and write one batch in one transaction; if the database refuses it, retry row by row."""
        problems: list[ImportProblem] = []
        accounts = self.accounts(rows, problems)
        plans: list[_Plan] = []
        ended = 0
        try:
            with transaction.atomic():
                plans = self.plan(accounts, problems, ids)
                if not self.result.dry_run:
                    ended = self.write(plans)
        except (IntegrityError, DataError):
            plans, ended = self._write_one_by_one(plans, problems)
        for problem in problems:
            self.result.add(problem)
        for plan in plans:
            setattr(self.result, plan.outcome, getattr(self.result, plan.outcome) + 1)
            self.result.profiles_created += plan.new_profile is not None
            self.result.profiles_updated += plan.changed_profile is not None
        self.result.sessions_ended += ended

    def _write_one_by_one(self, plans: list[_Plan], problems: list[ImportProblem]) -> tuple[list[_Plan], int]:
        written, ended = [], 0
        for plan in plans:
            try:
                with transaction.atomic():
                    ended += self.write([plan])
            except (IntegrityError, DataError) as exc:
                message = f"the database refused the row ({str(exc).strip().splitlines()[0]}); not imported"
                problems.append(ImportProblem(DATABASE_REFUSED, ERROR, USERS_TABLE, plan.user_id, message))
            else:
                written.append(plan)
        return written, ended


def _batches(source: _MonolithSource, batch_size: int) -> Iterable[list[sqlite3.Row]]:
    last_id = 0
    while rows := source.users_after(last_id, batch_size):
        yield rows
        last_id = rows[-1]["id"]


def monolith_import(
    *,
    path: str | Path,
    dry_run: bool = False,
    batch_size: int = 1000,
    notify: bool = False,
    progress: Callable[[BatchProgress], None] | None = None,
) -> MonolithImportResult:
    """Import the monolith's users and profiles with their ids and hashes; safe to run again."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    result = MonolithImportResult(source=str(path), dry_run=dry_run, batch_size=batch_size)
    source = _MonolithSource(path)
    try:
        importer = _Importer(source=source, result=result, notify=notify and not dry_run)
        importer.check_source()
        floors = {model: source.max_id(table) for model, table in PROFILE_TABLES.items()}
        use_sequences = connection.vendor == "postgresql"
        if use_sequences and not dry_run:
            _sequences_advance({CustomUser: source.max_id(USERS_TABLE), **floors})
        ids = _ProfileIds(floors, use_sequences=use_sequences)
        processed = 0
        for rows in _batches(source, batch_size):
            importer.run_batch(rows, ids)
            processed += len(rows)
            result.batches += 1
            if progress is not None:
                seconds = time.perf_counter() - started
                progress(
                    BatchProgress(result.batches, rows[0]["id"], rows[-1]["id"], processed, result.total_users, seconds)
                )
        if not dry_run:
            result.sequences_reset = _sequences_reset()
    finally:
        source.close()
    if notify:
        result.notify_message = (
            "--notify: announcements are not available yet (this service has no outbox); nothing was sent."
        )
    result.problems.sort(key=lambda p: (p.kind, p.table, p.row_id or 0))
    result.seconds = time.perf_counter() - started
    return result
