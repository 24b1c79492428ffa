"""The people search is served by the trigram indexes of migration 0003 on PostgreSQL (EXPLAIN), and only there."""

import importlib
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection

from users.api.filters import StudentFilterSet
from users.models import CustomUser, Staff, Student, UserType
from users.selectors import people_queryset, people_search_user_ids
from users.services.people import SEARCH_INDEXES, search_indexes_flush

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes exist on PostgreSQL only"),
]
migration = importlib.import_module("users.migrations.0003_search_indexes")
INDEXES = {name for name, _, _ in migration.TRIGRAM_INDEXES}


@pytest.fixture
def crowd():
    call_command("seed_demo", students=1500, staff=100, hods=2, seed=11)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE users_customuser; ANALYZE users_student; ANALYZE users_staff")


def plan_of(queryset) -> str:
    with connection.cursor() as cursor:
        # On a few thousand rows a full scan is as cheap as the index; bench/bench_people.py shows the planner's
        # own choice on a large table. Here: no sequential and no plain index scans, so the search must be served
        # by a bitmap scan of an index whose expression matches what the ORM emits (or the plan's cost explodes).
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
    return queryset.explain()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (Student, {"users_user_first_name_trgm", "users_user_last_name_trgm", "users_student_student_id_trgm"}),
        (Staff, {"users_user_email_trgm", "users_user_username_trgm", "users_staff_employee_id_trgm"}),
        (CustomUser, INDEXES),
    ],
)
def test_search_uses_the_trigram_indexes(crowd, model, expected):
    plan = plan_of(people_search_user_ids(model, "smit"))

    assert "Bitmap Index Scan" in plan
    used = {name for name in INDEXES if name in plan}
    assert expected <= used, plan
    total_cost = float(plan.split("cost=", 1)[1].split("..", 1)[1].split(" ", 1)[0])
    assert total_cost < 1e9, plan  # no disabled node (PostgreSQL charges 1e10 for one) was needed


def test_the_page_of_a_search_walks_only_the_matching_rows(crowd):
    filtered = StudentFilterSet({"search": "smit"}, queryset=people_queryset(user_type=UserType.STUDENT))
    assert filtered.is_valid()

    plan = filtered.qs[:50].explain(analyze=True)

    assert "Index Scan using users_student_pkey" in plan
    assert "Index Cond: (id = ANY" in plan, plan
    assert "Seq Scan" not in plan


def test_the_flushed_indexes_are_the_migration_s():
    assert set(SEARCH_INDEXES) == INDEXES
    search_indexes_flush()  # runs on PostgreSQL without error


def test_the_index_expression_is_the_one_the_orm_emits(crowd):
    sql, _ = people_search_user_ids(Student, "smit").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'users_user_last_name_trgm'")
        (definition,) = cursor.fetchone()

    assert 'UPPER("users_customuser"."last_name"::text) LIKE UPPER(' in sql
    assert "upper((last_name)::text) gin_trgm_ops" in definition


def test_the_migration_is_reversible():
    def index_names() -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE %s", ["%_trgm"])
            return {row[0] for row in cursor.fetchall()}

    assert index_names() >= INDEXES
    call_command("migrate", "users", "0002", verbosity=0)
    assert not index_names() & INDEXES
    call_command("migrate", "users", verbosity=0)
    assert index_names() >= INDEXES


def test_nothing_runs_on_other_databases():
    executed = []
    editor = SimpleNamespace(connection=SimpleNamespace(vendor="sqlite"), execute=executed.append)
    operation = migration.RunSQLOnPostgreSQL(sql="CREATE EXTENSION pg_trgm", reverse_sql="SELECT 1")

    operation.database_forwards("users", editor, None, None)
    operation.database_backwards("users", editor, None, None)

    assert executed == []
