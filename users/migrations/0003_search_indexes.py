"""Trigram GIN indexes for the people search, on PostgreSQL only (the embedded SQLite mode skips them).

Django compiles ``field__icontains=term`` on PostgreSQL to ``UPPER("col"::text) LIKE UPPER('%term%')``; each
index below is on exactly that expression, so the planner can answer the search with a bitmap index scan
(tested with EXPLAIN in users/tests/test_people_search_index.py). The indexes live outside the model state, so
``makemigrations`` never sees them.
"""

from django.db import migrations

# (index name, table, column)
TRIGRAM_INDEXES = [
    ("users_user_first_name_trgm", "users_customuser", "first_name"),
    ("users_user_last_name_trgm", "users_customuser", "last_name"),
    ("users_user_username_trgm", "users_customuser", "username"),
    ("users_user_email_trgm", "users_customuser", "email"),
    ("users_student_student_id_trgm", "users_student", "student_id"),
    ("users_staff_employee_id_trgm", "users_staff", "employee_id"),
]


class RunSQLOnPostgreSQL(migrations.RunSQL):
    """``RunSQL`` that does nothing on any database vendor other than PostgreSQL."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return "Raw SQL operation (PostgreSQL only)"


class Migration(migrations.Migration):

    dependencies = [
        ("users", "0002_service_accounts_audit_outbox"),
    ]

    operations = [
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it. It is left in place
        # on reverse, since other objects may depend on it.
        RunSQLOnPostgreSQL(sql="CREATE EXTENSION IF NOT EXISTS pg_trgm", reverse_sql=migrations.RunSQL.noop),
        *[
            RunSQLOnPostgreSQL(
                sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" USING gin ((UPPER("{column}"::text)) gin_trgm_ops)',
                reverse_sql=f'DROP INDEX IF EXISTS "{name}"',
            )
            for name, table, column in TRIGRAM_INDEXES
        ],
    ]
