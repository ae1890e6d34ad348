"""Django's SQLite backend, with the connections it closes kept for the next one to open.

Under ASGI every HTTP request runs its sync code in a thread of its own
(``ThreadSensitiveContext``) and every ``database_sync_to_async`` call of the socket consumer
closes its connection when it returns, so each request and each socket call opened a new
SQLite connection: ``sqlite3.connect``, Django's ~30 SQL functions, four PRAGMAs (≈ 0.5-1.3 ms
measured on this machine, 8 % of a loaded server's samples). Django pools PostgreSQL
connections only; this keeps up to ``DATABASE_POOL_MAX_SIZE`` idle SQLite connections per
process and database file and hands them out again.

A connection goes back only when it is idle: not inside ``atomic`` and no transaction open
(else it is closed as before). One taken from the idle list is checked against the file it was
opened on (a test database deleted and made again is a new file), and a forked child drops the
parent's (SQLite connections must not cross ``fork``).
"""

from __future__ import annotations

import functools
import os
import threading

from django.conf import settings
from django.db.backends.sqlite3 import base

_lock = threading.Lock()
# Rewritten statements kept (``SQLiteCursorWrapper``), and the longest kept: a multi-row
# INSERT's text grows with its rows, and is rewritten each time as before.
QMARK_STATEMENTS_KEPT = 512
QMARK_MAX_LENGTH = 4096
# database path -> [(connection, the file's (st_dev, st_ino) when it was opened)]
_idle: dict[str, list[tuple[object, tuple[int, int] | None]]] = {}


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _idle.clear()  # not closed: they belong to the parent


os.register_at_fork(after_in_child=_forget_after_fork)


def idle_connections() -> int:
    """Idle connections held by this process (all files)."""
    with _lock:
        return sum(len(conns) for conns in _idle.values())


class DatabaseWrapper(base.DatabaseWrapper):
    # The file the current connection was opened on.
    _opened_on: tuple[int, int] | None = None

    def _pool_path(self, conn_params) -> str | None:
        path = str(conn_params.get("database", ""))
        if self.is_in_memory_db() or not path:
            return None
        return path

    def get_new_connection(self, conn_params):
        path = self._pool_path(conn_params)
        while path is not None:
            with _lock:
                idle = _idle.get(path)
                if not idle:
                    break
                conn, opened_on = idle.pop()
            if opened_on is not None and opened_on == _file_id(path):
                self._opened_on = opened_on
                return conn
            conn.close()  # the file it was opened on is gone
        conn = super().get_new_connection(conn_params)
        self._opened_on = _file_id(path) if path else None
        return conn

    def _close(self):
        conn = self.connection
        path = self._pool_path(self.get_connection_params()) if conn is not None else None
        if (
            path is None
            or self.in_atomic_block
            or conn.in_transaction
            or settings.DATABASE_POOL_MAX_SIZE <= 0
        ):
            return super()._close()
        with _lock:
            idle = _idle.setdefault(path, [])
            if len(idle) < settings.DATABASE_POOL_MAX_SIZE:
                idle.append((conn, self._opened_on))
                return None
        return super()._close()

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=SQLiteCursorWrapper)


@functools.lru_cache(maxsize=QMARK_STATEMENTS_KEPT)
def _qmark(query: str) -> str:
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    """Django's cursor, with each statement's ``%s`` → ``?`` rewrite kept: Django runs its
    regular expression over the whole text on every execution (2.7 % of a served 3-node run's
    CPU, py-spy), and a server runs the same few statements again and again."""

    def convert_query(self, query, *, param_names=None):
        if param_names is None and len(query) <= QMARK_MAX_LENGTH:
            return _qmark(query)
        return super().convert_query(query, param_names=param_names)
