"""Statements prepared once per database connection.

Django binds parameters in psycopg (client-side) and never prepares a statement, so that a connection pooler in
transaction mode can hand the connection to another client between statements. A statement sent for every one of
many small units of work (the outbox's bookkeeping: a claim and an outcome per message) can be prepared instead:
PostgreSQL parses and plans it once per connection, and later executions send only its parameters, bound on the
server. psycopg names and keeps its prepared statements per connection, over the protocol (never with ``PREPARE``),
which PgBouncer 1.21 and later tracks across pooled connections when ``max_prepared_statements`` is set;
``DB_PREPARED_STATEMENTS=False`` (the connection's ``prepare_threshold``, None) turns preparing off for an older
pooler: the statements are then sent with their parameters bound on the server, unprepared.
"""

from typing import Any

import psycopg
from django.db import connection
from django.db.backends.utils import CursorWrapper


class _PreparedCursor(psycopg.Cursor):
    """psycopg's server-side binding cursor, which prepares every statement it executes (psycopg's per-connection
    cache, keyed by the statement's text and its parameters' types) unless the connection prepares nothing."""

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any) -> Any:
        return super().execute(query, params, prepare=True, **kwargs)

    def _convert_query(self, query: Any, params: Any = None) -> Any:
        # Django's query log (``last_executed_query``) reads the statement from ``_query``, which psycopg sets only for
        # a statement it does not prepare; users/tests/test_outbox_delivery.py reads the log.
        self._query = converted = super()._convert_query(query, params)
        return converted


def prepared_cursor() -> CursorWrapper:
    """Django's cursor (its error mapping, query logging and execute wrappers) over a cursor that prepares what it
    executes, on PostgreSQL; Django's own cursor elsewhere (the embedded SQLite). Its statements' text must not vary
    with their values (those are parameters), or each variant is prepared anew."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_PreparedCursor(connection.connection))  # type: ignore[attr-defined]
