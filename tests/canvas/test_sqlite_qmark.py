"""canvas/sqlite: a statement's ``%s`` → ``?`` rewrite is kept, and is Django's rewrite."""

import pytest
from django.db import connection
from django.db.backends.sqlite3.base import SQLiteCursorWrapper as DjangoCursor

from canvas.sqlite import base

pytestmark = [
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only"),
    pytest.mark.django_db,
]

STATEMENTS = [
    "SELECT %s",
    "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%' AND c = %s",
    "SELECT '%%s', %s",  # an escaped percent before an s is not a parameter
    "INSERT INTO t (a, b) VALUES " + ", ".join(["(%s, %s)"] * 400),  # noqa: S608 - long
]


@pytest.mark.parametrize("statement", STATEMENTS)
def test_the_rewrite_is_djangos(statement):
    ours = base.SQLiteCursorWrapper.convert_query(None, statement)
    assert ours == DjangoCursor.convert_query(None, statement)


def test_cursors_keep_the_rewrite_of_short_statements():
    base._qmark.cache_clear()
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, base.SQLiteCursorWrapper)
        for _ in range(3):
            cursor.execute("SELECT %s + %s", [1, 2])
            assert cursor.fetchone() == (3,)
        cursor.execute("SELECT %(a)s", {"a": 5})  # named parameters: Django's own rewrite
        assert cursor.fetchone() == (5,)
    info = base._qmark.cache_info()
    assert (info.misses, info.hits) == (1, 2)
