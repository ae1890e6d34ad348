"""canvas/sqlite: a closed connection is handed to the next one opened, unless it is busy."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

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
    # It still works and still has Django's set-up (foreign keys on, the WAL journal) and
    # ours (the page cache bound).
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        assert cursor.fetchone()[0] == 1
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA cache_size")
        assert cursor.fetchone()[0] == -512


def test_the_page_cache_of_every_connection_is_bounded_by_the_setting(tmp_path):
    # A served process keeps a connection per executor and node thread and its idle ones,
    # each with its own page cache: the setting bounds what they hold together.
    code = (
        "import django; django.setup(); from django.db import connection; "
        "c = connection.cursor(); c.execute('PRAGMA cache_size'); print(c.fetchone()[0])"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "canvas.settings",
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DATABASE_SQLITE_CACHE_KIB": "128",
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "-128"


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
