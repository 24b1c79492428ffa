"""The database connection between requests: a statement that can stand in for Django's health check.

With ``CONN_HEALTH_CHECKS`` Django asks PostgreSQL ``SELECT 1`` before a request's first query on a kept connection,
so that a connection broken since the last request (a database restart, a killed backend) is replaced before it is
used. That is a round trip of its own. A request whose first statement can simply be sent again lets that statement
be the check: ``execute_checking_connection`` sends it without the ``SELECT 1``, and if it fails because the
connection is broken, replaces the connection and sends it once more, which is what the check would have done.
"""

from collections.abc import Sequence
from typing import Any

from django.db import InterfaceError, OperationalError, connection


def execute_checking_connection(sql: str, params: Sequence[Any]) -> None:
    """Run ``sql`` in autocommit; when it is the request's first statement it is also the connection's health check.

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
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    database.health_check_done = True  # the statement below is the check
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    except (OperationalError, InterfaceError):
        if connection.is_usable():
            raise
        connection.close()
        with connection.cursor() as cursor:  # a new connection
            cursor.execute(sql, params)
