"""The row writer's INSERTs store what the ORM would read back, in both of PostgreSQL's forms
(a VALUES list for a few values, one array per column above ``COLUMNAR_ABOVE``)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DataError, connection, transaction

from tests.workflows.conftest import build_graph
from workflows import rowwriter
from workflows.cache import CACHE_COLUMNS
from workflows.events import EVENT_COLUMNS
from workflows.models import ExecutionEvent, NodeOutputCache
from workflows.services import execution_create

pytestmark = pytest.mark.django_db

AWKWARD = [
    {"quote": 'say "hi"', "backslash": "a\\b", "braces": "{x,y}", "comma": "a,b"},
    {"unicode": "naïve ☃ 𝄞", "nul-free control": "line\nbreak\ttab"},
    ["NULL", None, "", 0, -1.5, True, {"nested": [1, [2, [3]]]}],
    "just a string",
]


@pytest.fixture(params=["values", "columnar"])
def form(request, monkeypatch):
    if request.param == "columnar":
        if connection.vendor != "postgresql":
            pytest.skip("arrays per column are PostgreSQL's form")
        monkeypatch.setattr(rowwriter, "COLUMNAR_ABOVE", 0)
    else:
        monkeypatch.setattr(rowwriter, "COLUMNAR_ABOVE", 10**9)
    return request.param


@pytest.fixture
def execution(user):
    graph = build_graph(user, {"t": ("text", {"text": "x"})})
    return execution_create(user=user, graph=graph, dispatch=False)


def test_rows_read_back_as_written(form, execution):
    ts = datetime(2026, 11, 29, 3, 4, 5, 678901, tzinfo=UTC)
    rows = [
        (execution.id, 2 + i, f"event.{i}", data, ts + timedelta(seconds=i))
        for i, data in enumerate(AWKWARD)
    ]
    with transaction.atomic():
        rowwriter.insert_rows(ExecutionEvent._meta.db_table, EVENT_COLUMNS, rows)
    stored = list(
        ExecutionEvent.objects.filter(execution=execution, seq__gte=2)
        .order_by("seq")
        .values_list("execution_id", "seq", "event", "data", "ts")
    )
    assert stored == rows


def test_an_upsert_keeps_the_last_row_of_a_key(form, user):
    now = datetime(2026, 11, 29, tzinfo=UTC)

    def row(key, outputs):
        return (key, user.pk, "template", outputs, 1, now, now + timedelta(hours=1))

    with transaction.atomic():
        rowwriter.insert_rows(
            NodeOutputCache._meta.db_table, CACHE_COLUMNS, [row("a", {"v": 1})], upsert_on="key"
        )
        rowwriter.insert_rows(
            NodeOutputCache._meta.db_table,
            CACHE_COLUMNS,
            [row("a", {"v": 2}), row("b", {"v": "b"}), row("a", {"v": 3})],
            upsert_on="key",
        )
    assert dict(NodeOutputCache.objects.values_list("key", "outputs")) == {
        "a": {"v": 3},
        "b": {"v": "b"},
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite stores any length")
def test_a_value_too_long_for_its_column_fails_and_is_not_cut(form, execution):
    row = (execution.id, 2, "e" * 33, {}, datetime.now(UTC))  # event: max_length 32
    with pytest.raises(DataError), transaction.atomic():
        rowwriter.insert_rows(ExecutionEvent._meta.db_table, EVENT_COLUMNS, [row])
    assert not ExecutionEvent.objects.filter(execution=execution, seq=2).exists()
