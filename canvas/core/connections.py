"""Database connections of threads that wait: give them back before the wait.

A thread that waits on the network (an LLM reply may take minutes) or on other threads must
not hold a connection meanwhile: on PostgreSQL each is one of psycopg's pool
(``DATABASE_POOL_MAX_SIZE``, 20 by default), and eleven runs waiting on their LLM nodes once
held them all, so the next request waited ``DATABASE_POOL_TIMEOUT`` and answered 503.
"""

from __future__ import annotations

from django.db import close_old_connections, connection


def release_connection() -> None:
    """Give this thread's database connection back; the next query takes one again.

    PostgreSQL: back to the pool (``CONN_MAX_AGE`` is 0 under ASGI, so Django's
    ``close_old_connections`` closes it, which returns it to the pool). SQLite: kept open unless
    unusable: closing the last connection to a WAL database checkpoints and removes the WAL
    (13 ms measured), and a file database has no pool to starve. Inside a transaction:
    nothing (the transaction needs it; a test's wrapping transaction too).
    """
    if connection.in_atomic_block:
        return
    if connection.vendor == "sqlite":
        if connection.connection is not None and not connection.is_usable():
            connection.close()
        return
    close_old_connections()
