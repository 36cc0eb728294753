"""Statements over arrays of thousands of values on PostgreSQL (one ``unnest`` each),
their parameters bound on the server in binary.

Why: Django's cursor binds on the client, quoting every element of an array in Python.
Measured on 5000 values per array: 25 to 30 ms of CPU for a ``timestamptz[]``, 9 ms for a
``float8[]``, against 1.3 to 1.7 ms each bound in binary (psycopg's C dumpers). A
takeover's registration states (five arrays of 5000) cost the SIP process about 75 ms of
CPU per write that way, in the seconds it must spend sending REGISTERs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection


def execute(sql: str, params: Sequence[Any], *, returning: bool = False) -> list[tuple] | int:
    """Run ``sql`` (placeholders ``%b``; PostgreSQL only) in the current connection and
    transaction, with Django's errors (``django.db.OperationalError`` and the rest): the
    rows it returns with ``returning``, else how many it touched. Each array's elements
    must be of one Python type (ints and floats are not mixed)."""
    assert connection.vendor == "postgresql", "core.arrays needs PostgreSQL"
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if returning else cursor.rowcount
