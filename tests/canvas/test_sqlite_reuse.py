"""canvas/sqlite: a closed connection is handed to the next one opened, unless it is busy."""

import os
import sqlite3

import pytest
from django.db import connection, connections, transaction

from canvas.sqlite import base

pytestmark = [
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only"),
    pytest.mark.django_db(transaction=True),
]


def raw(conn) -> sqlite3.Connection:
    return conn.connection


def test_a_closed_idle_connection_is_opened_again():
    connection.ensure_connection()
    first = raw(connection)
    connection.close()
    assert base.idle_connections() >= 1
    connection.ensure_connection()
    assert raw(connection) is first
    # It still works and still has Django's set-up (foreign keys on, the WAL journal).
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        assert cursor.fetchone()[0] == 1
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


def test_a_connection_closed_inside_a_transaction_is_not_kept():
    connection.ensure_connection()
    with transaction.atomic():
        busy = raw(connection)
        connection.close()
    connection.ensure_connection()
    assert raw(connection) is not busy
    with pytest.raises(sqlite3.ProgrammingError):
        busy.execute("SELECT 1")  # really closed


def test_the_idle_list_is_bounded_by_the_setting(settings):
    settings.DATABASE_POOL_MAX_SIZE = 0
    connection.ensure_connection()
    first = raw(connection)
    connection.close()
    connection.ensure_connection()
    assert raw(connection) is not first


def test_a_connection_to_a_replaced_file_is_not_reused(tmp_path):
    path = tmp_path / "db.sqlite3"
    sqlite3.connect(path).close()
    backend = type(connections["default"])
    wrapper = backend({**connection.settings_dict, "NAME": str(path)}, alias="other")
    wrapper.ensure_connection()
    old = raw(wrapper)
    wrapper.close()
    os.remove(path)
    sqlite3.connect(path).close()  # a new file at the same path
    wrapper.ensure_connection()
    assert raw(wrapper) is not old
    wrapper.close()
