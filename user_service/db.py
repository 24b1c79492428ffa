"""The database connection between requests: a statement that can stand in for Django's health check, prepared once
per connection.

With ``CONN_HEALTH_CHECKS`` Django asks PostgreSQL ``SELECT 1`` before a request's first query on a kept connection,
so that a connection broken since the last request (a database restart, a killed backend) is replaced before it is
used. That is a round trip of its own. A request whose first statement can simply be sent again lets that statement
be the check: ``execute_checking_connection`` sends it without the ``SELECT 1``, and if it fails because the
connection is broken, replaces the connection and sends it once more, which is what the check would have done.

Django binds parameters in psycopg (client-side) and never prepares a statement, so that a connection pooler in
transaction mode can hand the connection to another client between statements. A statement sent on every request
can be prepared instead: PostgreSQL parses and plans it once per connection, and later executions send only its
parameters. psycopg names and keeps its prepared statements per connection, over the protocol (never with
``PREPARE``), which PgBouncer 1.21 and later tracks across pooled connections when ``max_prepared_statements`` is
set; ``DB_PREPARED_STATEMENTS=False`` (the connection's ``prepare_threshold``, None) turns this off for an older
pooler: the statement is then sent with its parameters, bound on the server, unprepared.
"""

from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError, connection
from django.db.backends.utils import CursorWrapper


class _PreparedCursor(psycopg.Cursor):
    """psycopg's server-side binding cursor, which prepares every statement it executes (psycopg's per-connection
    cache, keyed by the statement's text and its parameters' types) unless the connection prepares nothing."""

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any) -> Any:
        return super().execute(query, params, prepare=True, **kwargs)

    def _convert_query(self, query: Any, params: Any = None) -> Any:
        # Django's query log (``last_executed_query``) reads the statement from ``_query``, which psycopg sets only for
        # a statement it does not prepare; ``test_oidc_authorize.py`` reads the log.
        self._query = converted = super()._convert_query(query, params)
        return converted


def _cursor(prepared: bool) -> CursorWrapper:
    """Django's cursor (its error mapping, query logging and execute wrappers) over a preparing psycopg cursor when
    ``prepared`` and PostgreSQL, and over its own otherwise."""
    if not (prepared and connection.vendor == "postgresql"):
        return connection.cursor()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_PreparedCursor(connection.connection))  # type: ignore[attr-defined]


def execute_checking_connection(sql: str, params: Sequence[Any], *, prepared: bool = False) -> None:
    """Run ``sql`` in autocommit; when it is the request's first statement it is also the connection's health check.
    With ``prepared`` it is prepared on the connection (see the module's text), so its text must not vary.

    Only for a statement that is its own transaction and that may be sent twice: when the connection broke before
    it, PostgreSQL never received it; when it broke during it, the second try answers as any other failure would
    (an INSERT of a unique value that did commit fails on the constraint). A failure on a working connection is
    raised as it is, never sent again. Inside a transaction, or where the check is off or already done, this is a
    plain ``execute``.
    """
    database: Any = connection  # django-stubs do not declare the health check's attributes
    unchecked = (
        database.connection is not None
        and database.health_check_enabled
        and not database.health_check_done
        and not database.in_atomic_block
    )
    if not unchecked:
        with _cursor(prepared) as cursor:
            cursor.execute(sql, params)
        return
    database.health_check_done = True  # the statement below is the check
    try:
        with _cursor(prepared) as cursor:
            cursor.execute(sql, params)
    except (OperationalError, InterfaceError):
        if connection.is_usable():
            raise
        connection.close()
        with _cursor(prepared) as cursor:  # a new connection
            cursor.execute(sql, params)
