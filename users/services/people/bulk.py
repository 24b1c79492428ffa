"""Bulk inserts for the roster import (COPY on PostgreSQL, no model instances) and the search-index merge after."""

from typing import Any, cast

from django.db import connection, models
from django.utils import timezone
from psycopg.types.json import Jsonb

ROSTER_BATCH_SIZE = 2000
# The trigram GIN indexes of migration 0003 (test_people_search_index checks the two lists agree).
SEARCH_INDEXES = (
    "users_user_first_name_trgm",
    "users_user_last_name_trgm",
    "users_user_username_trgm",
    "users_user_email_trgm",
    "users_student_student_id_trgm",
    "users_staff_employee_id_trgm",
)


def _insert_rows(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """Insert rows given as {attname: value} (other fields take their defaults) whose ids nobody needs back.

    On PostgreSQL with COPY, without building model instances (faster than bulk_create: README, "Benchmarks");
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
        model._default_manager.bulk_create(
            [model(**{**fixed, **{f.attname: f.get_default() for f in unique}, **row}) for row in rows],
            batch_size=ROSTER_BATCH_SIZE,
        )
        return
    names = [f.attname for f in fields]
    quote = connection.ops.quote_name
    # cast: a concrete field always has its column (the stubs allow None for the others).
    sql = f"COPY {quote(model._meta.db_table)} ({', '.join(quote(cast(str, f.column)) for f in fields)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            values = {**fixed, **{f.attname: f.get_default() for f in unique}, **row}
            copy.write_row([_copy_value(values[name]) for name in names])


def search_indexes_flush() -> None:
    """Merge the pending entries of the search indexes after a bulk insert (PostgreSQL; a no-op elsewhere).

    A GIN index first appends new entries to a pending list, which every search must scan and which the planner
    prices in: after a large bulk insert it may prefer a sequential scan until autovacuum runs (an insert
    smaller than ``autovacuum_vacuum_insert_scale_factor`` of the table does not trigger it).
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
