"""Looking at and writing the target: batch lookups, username/e-mail owners, bulk COPY and updates, sequences."""

from dataclasses import dataclass, field
from typing import Any, cast

from django.core.management.color import no_style
from django.db import connection, models
from django.db.models import F, Lookup, Max
from django.db.models.functions import Lower
from django.db.models.lookups import In
from django.utils import timezone
from psycopg.types.json import Jsonb

from users.models import PROFILE_MODELS, CustomUser, ProfileBase
from users.people_schema import ROLES
from users.services.monolith_import.source import _Account

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
# The profile fields the monolith has (read by source.PROFILE_COLUMNS), from the declaration of each role's fields.
PROFILE_FIELDS: dict[type[ProfileBase], tuple[str, ...]] = {
    role.model: role.names(monolith=True) for role in ROLES.values()
}
BULK_UPDATE_ROWS = 100  # bulk_update builds one CASE WHEN per row and field; small statements stay linear


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
class _Target:
    """What the target holds for one batch's ids, fetched with a fixed number of queries (range scans mostly)."""

    users: dict[int, dict[str, Any]]
    profiles_by_id: dict[type[ProfileBase], dict[int, dict[str, Any]]]
    profiles_by_user: dict[type[ProfileBase], dict[int, dict[str, Any]]]

    @classmethod
    def load(cls, accounts: list[_Account], *, lock: bool) -> "_Target":
        id_range = (accounts[0].user_id, accounts[-1].user_id)  # accounts come in id order
        names = ("id", *USER_FIELDS, "deactivated_at", "email_verified")
        users_qs = CustomUser.objects.filter(pk__range=id_range).values_list(*names)
        users = {
            row[0]: dict(zip(names, row, strict=True)) for row in (users_qs.select_for_update() if lock else users_qs)
        }
        by_id: dict[type[ProfileBase], dict[int, dict[str, Any]]] = {}
        by_user: dict[type[ProfileBase], dict[int, dict[str, Any]]] = {}
        for model, fields in PROFILE_FIELDS.items():
            profile_names = ("id", "user_id", *fields)
            found = list(
                model.objects.filter(user_id__gte=id_range[0], user_id__lte=id_range[1]).values(*profile_names)
            )
            source_ids = [a.profile_id for a in accounts if a.model is model and a.profile_id is not None]
            if source_ids:  # who holds the monolith's profile ids, whoever they belong to
                found += model.objects.filter(_among(F("pk"), source_ids)).values(*profile_names)
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
    current: dict[str, Any] | None = None  # the target's user row before the import (None: a new account)

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


def _column(field: models.Field) -> str:
    return cast(str, field.column)  # a concrete field always has its column; the stubs allow None for the rest


def _rows_insert(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """Insert new rows, each carrying its id: COPY on PostgreSQL (no per-value ORM work), bulk_create elsewhere."""
    if not rows:
        return
    if not _postgresql():
        model._default_manager.bulk_create([model(**row) for row in rows])
        return
    now = timezone.now()
    fields = model._meta.concrete_fields
    defaults = {
        f.attname: now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
        for f in fields
    }
    names = [f.attname for f in fields]
    json_names = [f.attname for f in fields if isinstance(f, models.JSONField)]  # COPY needs them wrapped
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(_column(f)) for f in fields)
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            merged = defaults | row
            for name in json_names:
                merged[name] = Jsonb(merged[name])
            copy.write_row([merged[name] for name in names])


def _rows_update(model: type[models.Model], rows: list[dict[str, Any]], fields: set[str]) -> None:
    instances = []
    for row in rows:
        instance = model(**row)
        instance._state.adding = False
        instances.append(instance)
    model._default_manager.bulk_update(instances, sorted(fields | {"updated_at"}), batch_size=BULK_UPDATE_ROWS)


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
    tables: list[type[models.Model]] = [CustomUser, *PROFILE_MODELS.values()]
    statements = connection.ops.sequence_reset_sql(no_style(), tables)
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    return [model._meta.db_table for model in tables] if statements else []
