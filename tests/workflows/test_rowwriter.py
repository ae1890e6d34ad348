"""The row writer's INSERTs and UPDATEs store what the ORM would read back, in both of
PostgreSQL's forms (a VALUES list for a few values, one array per column above
``COLUMNAR_ABOVE``); ``Writes`` writes all or nothing, after its fence, in one statement on
PostgreSQL."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.workflows.conftest import build_graph
from workflows import rowwriter
from workflows.cache import CACHE_COLUMNS
from workflows.events import EVENT_COLUMNS
from workflows.lease import owned_execution_statement
from workflows.models import Execution, ExecutionEvent, NodeOutputCache, NodeRun
from workflows.recorder import NODE_RUN_UPDATE_COLUMNS
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


def insert(table, columns, rows, **options):
    writes = rowwriter.Writes()
    writes.insert(table, columns, rows, **options)
    writes.run()


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
    insert(ExecutionEvent._meta.db_table, EVENT_COLUMNS, rows)
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

    insert(NodeOutputCache._meta.db_table, CACHE_COLUMNS, [row("a", {"v": 1})], upsert_on="key")
    insert(
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
        insert(ExecutionEvent._meta.db_table, EVENT_COLUMNS, [row])
    assert not ExecutionEvent.objects.filter(execution=execution, seq=2).exists()


# --- Writes ---------------------------------------------------------------------------------

TS = datetime(2026, 11, 29, 5, 6, 7, 890123, tzinfo=UTC)


def _owned_by(execution, worker: str) -> None:
    Execution.objects.filter(pk=execution.pk).update(status="running", worker=worker)


def _node_run(execution) -> NodeRun:
    return NodeRun.objects.create(
        execution=execution, node_id=uuid.uuid4(), node_type="template", status="running"
    )


def _event(execution, seq: int):
    return (execution.id, seq, f"event.{seq}", {"seq": seq}, TS)


def _fenced_writes(execution, worker: str, node_run: NodeRun, calls: list) -> rowwriter.Writes:
    writes = rowwriter.Writes(
        fence=owned_execution_statement(execution.id, worker=worker, heartbeat_at=TS)
    )
    writes.insert(ExecutionEvent._meta.db_table, EVENT_COLUMNS, [_event(execution, 2)])
    writes.update(
        NodeRun._meta.db_table,
        NODE_RUN_UPDATE_COLUMNS,
        [(node_run.id, "succeeded", {}, {"text": "done"}, "", 1, TS, TS, None, "")],
    )
    writes.on_commit(lambda: calls.append("committed"))
    return writes


def test_a_fence_that_changes_its_row_writes_everything_then_calls_back(
    execution, django_capture_on_commit_callbacks
):
    _owned_by(execution, "w1")
    node_run = _node_run(execution)
    calls: list = []
    writes = _fenced_writes(execution, "w1", node_run, calls)
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert writes.run() is True
        assert calls == []  # not before the commit
    assert calls == ["committed"]
    if connection.vendor == "postgresql":
        assert len(queries) == 1, [q["sql"] for q in queries]  # one round trip
    execution.refresh_from_db()
    assert execution.heartbeat_at == TS
    assert ExecutionEvent.objects.get(execution=execution, seq=2).data == {"seq": 2}
    node_run.refresh_from_db()
    assert (node_run.status, node_run.outputs, node_run.attempts, node_run.finished_at) == (
        "succeeded",
        {"text": "done"},
        1,
        TS,
    )


def test_a_fence_that_changes_no_row_writes_nothing(execution, django_capture_on_commit_callbacks):
    _owned_by(execution, "w1")
    node_run = _node_run(execution)
    calls: list = []
    writes = _fenced_writes(execution, "someone else", node_run, calls)
    with django_capture_on_commit_callbacks(execute=True):
        assert writes.run() is False
    assert calls == []
    execution.refresh_from_db()
    assert execution.heartbeat_at is None
    assert not ExecutionEvent.objects.filter(execution=execution, seq=2).exists()
    node_run.refresh_from_db()
    assert (node_run.status, node_run.outputs) == ("running", {})


@pytest.mark.parametrize("fenced", [False, True])
def test_updates_store_what_the_orm_reads_back(fenced, execution):
    _owned_by(execution, "w1")
    runs = [_node_run(execution) for _ in AWKWARD]
    rows = [
        (run.id, "failed", {"in": data}, data, 'it\'s \\ "bad"', 3, TS, None, data, "k" * 64)
        for run, data in zip(runs, AWKWARD, strict=True)
    ]
    fence = owned_execution_statement(execution.id, worker="w1", heartbeat_at=TS)
    writes = rowwriter.Writes(fence=fence if fenced else None)
    writes.update(NodeRun._meta.db_table, NODE_RUN_UPDATE_COLUMNS, rows)
    assert writes.run() is True
    names = [name for name, _kind in NODE_RUN_UPDATE_COLUMNS]
    stored = {
        values[0]: values
        for values in NodeRun.objects.filter(execution=execution).values_list(*names)
    }
    assert [stored[row[0]] for row in rows] == rows


@pytest.mark.django_db(transaction=True)
def test_writes_outside_a_transaction_are_all_or_nothing(user):
    """In autocommit (the engine's flush, a run's creation), a write that fails takes the
    others with it: PostgreSQL's one statement, the other backends' transaction."""
    graph = build_graph(user, {"t": ("text", {"text": "x"})})
    execution = execution_create(user=user, graph=graph, dispatch=False)
    _owned_by(execution, "w1")
    writes = rowwriter.Writes(
        fence=owned_execution_statement(execution.id, worker="w1", heartbeat_at=TS)
    )
    writes.insert(ExecutionEvent._meta.db_table, EVENT_COLUMNS, [_event(execution, 2)])
    writes.insert(ExecutionEvent._meta.db_table, EVENT_COLUMNS, [_event(execution, 1)])  # taken
    with pytest.raises(IntegrityError):
        writes.run()
    execution.refresh_from_db()
    assert execution.heartbeat_at is None
    assert list(ExecutionEvent.objects.filter(execution=execution).values_list("seq")) == [(1,)]
