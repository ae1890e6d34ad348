"""Ownership fencing, lost dispatches, cache expiry and pruning, SQLite under concurrent runs."""

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.workflows.conftest import build_graph, events_of, run_graph, wait_for
from workflows.cache import cache_prune
from workflows.engine import ExecutionRunner
from workflows.lease import claim_execution, read_queued
from workflows.models import Execution, ExecutionEvent, NodeOutputCache
from workflows.recorder import ordered_id
from workflows.recovery import executions_recover
from workflows.services import execution_cancel, execution_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_runner_whose_run_was_taken_over_stops_writing(user, sleep_node, settings):
    settings.WORKFLOW_HEARTBEAT_INTERVAL = 0.1
    graph = build_graph(
        user,
        {
            "a": ("test_sleep", {"seconds": 0.3}),
            "b": ("test_sleep", {"seconds": 0.3}),
            "out": ("output", {"name": "o"}),
        },
        [("a", "value", "b", "value"), ("b", "value", "out", "value")],
    )
    execution = execution_create(user=user, graph=graph, inputs={}, dispatch=False)
    runner = ExecutionRunner(execution.id)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("status", runner.run()))
    thread.start()
    wait_for(execution, statuses=("running",))
    # Another worker took the run over (as the recovery sweep's claimer would).
    Execution.objects.filter(pk=execution.pk).update(worker="someone-else")
    thread.join(10)
    assert result["status"] is None
    execution.refresh_from_db()
    assert execution.status == "running"
    assert execution.worker == "someone-else"
    names = [e for _, e, _ in events_of(execution)]
    assert not any(n in names for n in ("execution.completed", "execution.failed"))


def test_a_lost_dispatch_is_sent_again(user, settings):
    settings.WORKFLOW_STALE_AFTER = 1
    graph = build_graph(
        user,
        {"t": ("text", {"text": "hi"}), "o": ("output", {"name": "o"})},
        [("t", "text", "o", "value")],
    )
    execution = execution_create(user=user, graph=graph, inputs={}, dispatch=False)
    assert executions_recover(dispatch=False) == {"stale": [], "queued": []}
    Execution.objects.filter(pk=execution.pk).update(
        queued_at=timezone.now() - timedelta(seconds=5)
    )
    found = executions_recover()
    assert found["queued"] == [str(execution.id)]
    assert wait_for(execution).outputs == {"o": "hi"}


def test_cache_entries_expire_and_the_table_is_bounded(user, settings):
    graph = build_graph(
        user,
        {"t": ("text", {"text": "a"}), "o": ("output", {"name": "o"})},
        [("t", "text", "o", "value")],
    )
    run_graph(graph)
    entry = NodeOutputCache.objects.get()
    NodeOutputCache.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    second = run_graph(graph)
    assert second.node_runs.get(node_type="text").status == "succeeded"  # expired: a miss
    refreshed = NodeOutputCache.objects.get()
    assert refreshed.key == entry.key
    assert refreshed.expires_at > timezone.now()  # the fresh output replaced the expired one
    third = run_graph(graph)
    assert third.node_runs.get(node_type="text").status == "cached"

    settings.WORKFLOW_CACHE_MAX_ENTRIES = 3
    now = timezone.now()
    NodeOutputCache.objects.bulk_create(
        NodeOutputCache(
            key=f"k{i}",
            owner=user,
            node_type="text",
            outputs={},
            size=2,
            created_at=now - timedelta(minutes=i),
            expires_at=now + timedelta(days=1),
        )
        for i in range(6)
    )
    NodeOutputCache.objects.filter(key="k5").update(expires_at=now - timedelta(seconds=1))
    deleted = cache_prune()
    assert deleted == 4  # the expired k5, then k4, k3, k2: the oldest beyond three rows
    assert sorted(NodeOutputCache.objects.values_list("key", flat=True)) == sorted(
        [entry.key, "k0", "k1"]
    )


def test_concurrent_runs_never_see_database_is_locked(user, sleep_node, settings):
    settings.WORKFLOW_MAX_CONCURRENT_EXECUTIONS = 8
    graph = build_graph(
        user,
        {
            "in": ("input", {"name": "x"}),
            "tpl": ("template", {"template": "<{v}>"}),
            "s": ("test_sleep", {"seconds": 0.05}),
            "o": ("output", {"name": "o"}),
            "o2": ("output", {"name": "o2"}),
        },
        [
            ("in", "value", "tpl", "v"),
            ("tpl", "text", "o", "value"),
            ("in", "value", "s", "value"),
            ("s", "value", "o2", "value"),
        ],
    )
    from workflows.executors import reset_executor

    reset_executor()
    executions = [execution_create(user=user, graph=graph, inputs={"x": i}) for i in range(40)]
    deadline = time.monotonic() + 60
    for execution in executions:
        wait_for(execution, timeout=max(1, deadline - time.monotonic()))
    statuses = {e.status for e in executions}
    errors = [e.error for e in executions if e.error]
    assert statuses == {"succeeded"}, errors
    assert sorted(e.outputs["o"] for e in executions) == sorted(f"<{i}>" for i in range(40))
    reset_executor()
    assert connection.vendor in ("sqlite", "postgresql")


def test_a_failure_written_before_the_worker_died_ends_the_resumed_run_failed(user):
    from workflows.engine import execution_run

    graph = build_graph(
        user,
        {
            "in": ("input", {"name": "doc"}),
            "ex": ("extract", {"path": "missing"}),
            "tpl": ("template", {"template": "{x}"}),
            "out": ("output", {"name": "o"}),
        },
        [
            ("in", "value", "ex", "data"),
            ("ex", "value", "tpl", "x"),
            ("tpl", "text", "out", "value"),
        ],
    )
    execution = run_graph(graph, {"doc": {"other": 1}})
    assert execution.status == "failed"
    error = execution.error
    # Rewind to the moment after the failure's batch was written, before the final one: the
    # worker died there.
    execution.events.filter(event="execution.failed").delete()
    execution.node_runs.filter(status="cancelled").delete()
    Execution.objects.filter(pk=execution.pk).update(
        status="running",
        error="",
        finished_at=None,
        heartbeat_at=timezone.now() - timedelta(seconds=60),
        worker="dead",
    )
    assert execution_run(execution.id) == "failed"
    execution.refresh_from_db()
    assert execution.error == error
    statuses = {r.node_type: r.status for r in execution.node_runs.all()}
    assert statuses == {
        "input": "succeeded",
        "extract": "failed",
        "template": "cancelled",
        "output": "cancelled",
    }
    events = events_of(execution)
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    names = [e for _, e, _ in events]
    assert names.count("execution.failed") == 1
    assert names.count("node.started") == 2  # input and extract, once each


def test_a_run_cancelled_while_its_worker_was_gone_ends_cancelled_on_recovery(user):
    from workflows.engine import execution_run

    graph = build_graph(
        user,
        {"t": ("text", {"text": "x"}), "o": ("output", {"name": "o"})},
        [("t", "text", "o", "value")],
    )
    execution = execution_create(user=user, graph=graph, inputs={}, dispatch=False)
    Execution.objects.filter(pk=execution.pk).update(
        status="running",
        worker="dead",
        cancel_requested=True,
        heartbeat_at=timezone.now() - timedelta(seconds=60),
    )
    assert execution_run(execution.id) == "cancelled"
    execution.refresh_from_db()
    assert execution.status == "cancelled"
    assert set(execution.node_runs.values_list("status", flat=True)) == {"cancelled"}
    assert [e for _, e, _ in events_of(execution)][-1] == "execution.cancelled"


def test_deleting_the_graph_stops_its_run_quietly(user, sleep_node):
    graph = build_graph(
        user,
        {"a": ("test_sleep", {"seconds": 0.3}), "b": ("test_sleep", {"seconds": 0.3})},
        [("a", "value", "b", "value")],
    )
    execution = execution_create(user=user, graph=graph, inputs={}, dispatch=False)
    runner = ExecutionRunner(execution.id)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("status", runner.run()))
    thread.start()
    wait_for(execution, statuses=("running",))
    graph.delete()
    thread.join(10)
    assert not thread.is_alive()
    assert result["status"] is None
    assert not Execution.objects.filter(pk=execution.pk).exists()


def _small_run(user):
    graph = build_graph(
        user,
        {"t": ("text", {"text": "hi"}), "o": ("output", {"name": "o"})},
        [("t", "text", "o", "value")],
    )
    return execution_create(user=user, graph=graph, inputs={}, dispatch=False)


def _after_the_read(monkeypatch, action):
    """Run ``action`` right after the runner read its queued run (before its first flush)."""
    from workflows import engine

    def read_then_act(execution_id):
        read = read_queued(execution_id)
        action()
        return read

    monkeypatch.setattr(engine, "read_queued", read_then_act)


def test_a_small_run_is_claimed_and_ended_in_one_write(user):
    execution = _small_run(user)
    assert ExecutionRunner(execution.id, worker_id="w1").run() == "succeeded"
    execution.refresh_from_db()
    assert (execution.status, execution.worker, execution.outputs) == (
        "succeeded",
        "w1",
        {"o": "hi"},
    )
    assert execution.started_at is not None
    assert execution.heartbeat_at is not None
    names = [e for _, e, _ in events_of(execution)]
    assert names[:2] == ["execution.queued", "execution.started"]
    assert names[-1] == "execution.completed"


def test_a_run_claimed_elsewhere_after_the_read_is_left_to_its_owner(user, monkeypatch):
    execution = _small_run(user)
    now = timezone.now()
    _after_the_read(
        monkeypatch,
        lambda: claim_execution(execution.id, worker="other", now=now, stale=now),
    )
    assert ExecutionRunner(execution.id, worker_id="w1").run() is None
    execution.refresh_from_db()
    assert (execution.status, execution.worker) == ("running", "other")
    assert [e for _, e, _ in events_of(execution)] == ["execution.queued"]
    assert not execution.node_runs.exists()
    assert not NodeOutputCache.objects.exists()


def test_a_run_cancelled_after_the_read_ends_cancelled_once(user, monkeypatch):
    execution = _small_run(user)
    _after_the_read(monkeypatch, lambda: execution_cancel(execution=execution))
    assert ExecutionRunner(execution.id, worker_id="w1").run() is None
    execution.refresh_from_db()
    assert execution.status == "cancelled"
    assert [e for _, e, _ in events_of(execution)] == ["execution.queued", "execution.cancelled"]
    assert not execution.node_runs.exists()


def test_a_run_whose_log_grew_after_the_read_is_run_by_the_usual_claim(user, monkeypatch):
    """(No path writes events of a queued run but its cancel; the runner does not rely on
    it.) The runner's numbers would collide: it claims again and resumes after them."""
    execution = _small_run(user)
    _after_the_read(
        monkeypatch,
        lambda: ExecutionEvent.objects.create(
            execution_id=execution.id,
            seq=2,
            event="execution.started",
            data={"status": "running"},
            ts=timezone.now(),
        ),
    )
    assert ExecutionRunner(execution.id, worker_id="w1").run() == "succeeded"
    execution.refresh_from_db()
    seqs = [seq for seq, _, _ in events_of(execution)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert execution.outputs == {"o": "hi"}


def test_an_engine_error_before_the_first_write_fails_the_run(user, monkeypatch):
    execution = _small_run(user)

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ExecutionRunner, "_advance", broken)
    assert ExecutionRunner(execution.id, worker_id="w1").run() == "failed"
    execution.refresh_from_db()
    assert (execution.status, execution.worker) == ("failed", "w1")
    assert "boom" in execution.error
    assert [e for _, e, _ in events_of(execution)][-1] == "execution.failed"


def test_node_run_ids_are_uuids_that_sort_in_the_order_they_were_made():
    ids = [ordered_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    assert abs((ids[0].int >> 80) - time.time_ns() // 1_000_000) < 60_000


def test_runs_of_one_snapshot_share_its_plan_and_start_afresh(user):
    from workflows.engine import plan_of
    from workflows.lease import ClaimedRun

    execution = _small_run(user)
    text = json.dumps(Execution.objects.get(pk=execution.pk).snapshot)
    claimed = ClaimedRun(
        owner_id=user.pk, inputs={}, raw_snapshot=text, cancel_requested=False, last_seq=1
    )
    nodes, types, configs, first = plan_of(claimed)
    (ready,) = first.initially_ready()
    first.produced(ready, {"text": "hi"}, status="succeeded")
    again = plan_of(claimed)
    assert again[0] is nodes
    assert again[2] is configs
    second = again[3]
    assert second is not first
    assert second.status == {}
    assert second.outputs == {}
    assert second.initially_ready() == [ready]
    assert all(inputs == {} for inputs in second.inputs.values())
    # Each run of the graph gets the same answers.
    assert ExecutionRunner(execution.id).run() == "succeeded"
    assert run_graph(Execution.objects.get(pk=execution.pk).graph).outputs == {"o": "hi"}
