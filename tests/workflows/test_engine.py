"""The engine end to end on the inline executor: real threads, real database."""

import json
import time

import pytest
from django.db import transaction

from canvas.core.exceptions import ApplicationError
from tests.workflows.conftest import build_graph, events_of, run_graph, runs_by_key, wait_for
from workflows import engine
from workflows.lease import ClaimedRun
from workflows.models import Execution, NodeOutputCache
from workflows.services import execution_cancel, execution_create

pytestmark = pytest.mark.django_db(transaction=True)


def assert_gapless_with_one_terminal(execution):
    events = events_of(execution)
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    terminal = [
        e
        for _, e, _ in events
        if e.startswith("execution.") and e not in ("execution.queued", "execution.started")
    ]
    assert len(terminal) == 1, events
    assert events[-1][1] == terminal[0]
    return events


def branch_graph(user):
    return build_graph(
        user,
        {
            "in": ("input", {"name": "answer"}),
            "cond": ("condition", {"operator": "equals", "operand": "yes"}),
            "yes_tpl": ("template", {"template": "took yes with {v}"}),
            "yes_out": ("output", {"name": "yes"}),
            "no_tpl": ("template", {"template": "took no with {v}"}),
            "no_out": ("output", {"name": "no"}),
            "no_raw": ("output", {"name": "no_raw"}),
        },
        [
            ("in", "value", "cond", "value"),
            ("cond", "true", "yes_tpl", "v"),
            ("yes_tpl", "text", "yes_out", "value"),
            ("cond", "false", "no_tpl", "v"),
            ("no_tpl", "text", "no_out", "value"),
            ("cond", "false", "no_raw", "value"),
        ],
    )


def test_condition_skips_the_branch_not_taken_and_everything_behind_it(user):
    graph = branch_graph(user)
    execution = run_graph(graph, {"answer": "yes"})
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == {"yes": "took yes with yes"}
    runs = runs_by_key(graph, execution)
    assert runs["no_tpl"].status == "skipped"
    assert runs["no_out"].status == "skipped"
    assert runs["no_raw"].status == "skipped"
    assert runs["yes_out"].status == "succeeded"
    events = assert_gapless_with_one_terminal(execution)
    skipped = [d["node"] for _, e, d in events if e == "node.skipped"]
    assert sorted(skipped) == sorted(graph.node_ids[k] for k in ("no_tpl", "no_out", "no_raw"))
    # A skipped node emits node.skipped alone.
    for node in skipped:
        assert [e for _, e, d in events if d.get("node") == node] == ["node.skipped"]

    other = run_graph(graph, {"answer": "nope"})
    assert other.outputs == {"no": "took no with nope", "no_raw": "nope"}


def test_extract_walks_json_and_input_default_applies(user):
    graph = build_graph(
        user,
        {
            "in": ("input", {"name": "doc", "default": {"a": {"b": [{"c": 1}, {"c": "deep"}]}}}),
            "ex": ("extract", {"path": "a.b[1].c"}),
            "out": ("output", {"name": "c"}),
        },
        [("in", "value", "ex", "data"), ("ex", "value", "out", "value")],
    )
    assert run_graph(graph).outputs == {"c": "deep"}
    assert run_graph(graph, {"doc": '{"a": {"b": [0, {"c": 2}]}}'}).outputs == {"c": 2}


def test_first_failure_fails_the_run_naming_node_and_cause(user):
    graph = build_graph(
        user,
        {
            "in": ("input", {"name": "doc"}),
            "ex": ("extract", {"path": "missing.key"}),
            "after": ("template", {"template": "{x}"}),
            "out": ("output", {"name": "o"}),
        },
        [
            ("in", "value", "ex", "data"),
            ("ex", "value", "after", "x"),
            ("after", "text", "out", "value"),
        ],
    )
    execution = run_graph(graph, {"doc": {"other": 1}})
    assert execution.status == "failed"
    assert "'ex'" in execution.error
    assert "extract" in execution.error
    assert "No key 'missing'" in execution.error
    runs = runs_by_key(graph, execution)
    assert runs["ex"].status == "failed"
    assert runs["after"].status == "cancelled"
    assert runs["out"].status == "cancelled"
    events = assert_gapless_with_one_terminal(execution)
    assert events[-1][1] == "execution.failed"
    assert events[-1][2]["error"] == execution.error


def test_inputs_are_validated_against_input_nodes(user):
    graph = branch_graph(user)
    with pytest.raises(ApplicationError) as caught:
        execution_create(user=user, graph=graph, inputs={"answer": "x", "bogus": 1})
    assert caught.value.errors["inputs"][0]["field"] == "inputs.bogus"
    with pytest.raises(ApplicationError) as caught:
        execution_create(user=user, graph=graph, inputs={})
    assert caught.value.errors["inputs"][0]["field"] == "inputs.answer"
    assert not Execution.objects.exists()


def test_incomplete_graph_is_refused_with_the_validate_error_map(user):
    graph = build_graph(
        user,
        {"tpl": ("template", {"template": "{x}"}), "out": ("output", {})},
        [("tpl", "text", "out", "value")],
    )
    with pytest.raises(ApplicationError) as caught:
        execution_create(user=user, graph=graph, inputs={})
    assert graph.node_ids["tpl"] in caught.value.errors


def test_ready_nodes_run_concurrently(user, sleep_node, settings):
    settings.WORKFLOW_MAX_PARALLEL_NODES = 4
    graph = build_graph(
        user,
        {
            "a": ("test_sleep", {"seconds": 0.6}),
            "b": ("test_sleep", {"seconds": 0.6}),
            "oa": ("output", {"name": "a"}),
            "ob": ("output", {"name": "b"}),
        },
        [("a", "value", "oa", "value"), ("b", "value", "ob", "value")],
    )
    started = time.monotonic()
    execution = run_graph(graph)
    elapsed = time.monotonic() - started
    assert execution.status == "succeeded"
    assert execution.outputs == {"a": 0.6, "b": 0.6}
    assert elapsed < 1.1, elapsed
    runs = runs_by_key(graph, execution)
    # The two runs overlap in time.
    assert runs["a"].started_at < runs["b"].finished_at
    assert runs["b"].started_at < runs["a"].finished_at


def test_parallel_bound_is_respected(user, sleep_node, settings):
    settings.WORKFLOW_MAX_PARALLEL_NODES = 1
    graph = build_graph(
        user, {"a": ("test_sleep", {"seconds": 0.3}), "b": ("test_sleep", {"seconds": 0.3})}
    )
    execution = run_graph(graph)
    runs = runs_by_key(graph, execution)
    first, second = sorted(runs.values(), key=lambda r: r.started_at)
    assert second.started_at >= first.finished_at


def test_node_timeout_fails_the_run(user, sleep_node, settings):
    settings.WORKFLOW_NODE_TIMEOUT = 0.3
    graph = build_graph(user, {"slow": ("test_sleep", {"seconds": 5})})
    started = time.monotonic()
    execution = run_graph(graph)
    assert time.monotonic() - started < 2
    assert execution.status == "failed"
    assert "timed out after 0.3 s" in execution.error
    assert runs_by_key(graph, execution)["slow"].status == "failed"
    assert_gapless_with_one_terminal(execution)


def test_execution_timeout(user, sleep_node, settings):
    settings.WORKFLOW_EXECUTION_TIMEOUT = 0.3
    graph = build_graph(user, {"slow": ("test_sleep", {"seconds": 5})})
    execution = run_graph(graph)
    assert execution.status == "failed"
    assert "execution timed out after 0.3 s" in execution.error
    assert runs_by_key(graph, execution)["slow"].status == "cancelled"
    assert_gapless_with_one_terminal(execution)


def test_cancel_a_running_execution(user, sleep_node):
    graph = build_graph(
        user,
        {"slow": ("test_sleep", {"seconds": 10}), "after": ("output", {"name": "o"})},
        [("slow", "value", "after", "value")],
    )
    execution = execution_create(user=user, graph=graph, inputs={})
    wait_for(execution, statuses=("running",))
    deadline = time.monotonic() + 5
    while not execution.node_runs.filter(status="running").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    execution_cancel(execution=execution)
    execution = wait_for(execution)
    assert time.monotonic() - started < 1.0
    assert execution.status == "cancelled"
    runs = runs_by_key(graph, execution)
    assert runs["slow"].status == "cancelled"
    assert runs["after"].status == "cancelled"
    events = assert_gapless_with_one_terminal(execution)
    assert events[-1][1] == "execution.cancelled"
    # Idempotent: a second cancel changes nothing and writes nothing.
    execution_cancel(execution=execution)
    assert len(events_of(execution)) == len(events)


def test_cancel_a_queued_execution(user):
    graph = branch_graph(user)
    with transaction.atomic():
        execution = execution_create(user=user, graph=graph, inputs={"answer": "yes"})
        execution_cancel(execution=execution)
    time.sleep(0.2)  # the dispatch that follows the commit finds nothing to claim
    execution.refresh_from_db()
    assert execution.status == "cancelled"
    assert [e for _, e, _ in events_of(execution)] == ["execution.queued", "execution.cancelled"]
    assert not execution.node_runs.exists()


def test_the_inline_executor_runs_a_new_run_without_reading_it_back(user, monkeypatch):
    reads = []
    monkeypatch.setattr(engine, "read_queued", lambda execution_id: reads.append(execution_id))
    execution = run_graph(branch_graph(user), {"answer": "no"})
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == {"no": "took no with no", "no_raw": "no"}
    assert reads == []
    assert_gapless_with_one_terminal(execution)


def test_a_run_cancelled_after_its_creator_queued_it_is_not_run_from_what_it_queued(user):
    """What the creator hands the executor is checked by the first flush's claim: a run
    cancelled meanwhile writes nothing."""
    execution = execution_create(
        user=user, graph=branch_graph(user), inputs={"answer": "yes"}, dispatch=False
    )
    queued = ClaimedRun(
        owner_id=user.pk,
        inputs={"answer": "yes"},
        raw_snapshot=json.dumps(execution.snapshot),
        cancel_requested=False,
        last_seq=1,
    )
    execution_cancel(execution=execution)
    assert engine.execution_run(execution.id, queued=queued) is None
    execution.refresh_from_db()
    assert execution.status == "cancelled"
    assert [e for _, e, _ in events_of(execution)] == ["execution.queued", "execution.cancelled"]
    assert not execution.node_runs.exists()


def test_failed_slow_node_cancels_its_running_sibling(user, sleep_node):
    graph = build_graph(
        user,
        {
            "bad": ("test_sleep", {"seconds": 0.1, "fail": "boom"}),
            "long": ("test_sleep", {"seconds": 10}),
        },
    )
    started = time.monotonic()
    execution = run_graph(graph)
    assert time.monotonic() - started < 2
    assert execution.status == "failed"
    assert "boom" in execution.error
    runs = runs_by_key(graph, execution)
    assert runs["bad"].status == "failed"
    assert runs["long"].status == "cancelled"


def test_second_run_answers_from_the_cache(user):
    graph = build_graph(
        user,
        {
            "t": ("text", {"text": "a"}),
            "tpl": ("template", {"template": "<{x}>"}),
            "nocache": ("template", {"template": "[{x}]", "cache": False}),
            "o1": ("output", {"name": "o1"}),
            "o2": ("output", {"name": "o2"}),
        },
        [
            ("t", "text", "tpl", "x"),
            ("tpl", "text", "nocache", "x"),
            ("tpl", "text", "o1", "value"),
            ("nocache", "text", "o2", "value"),
        ],
    )
    first = run_graph(graph)
    assert first.outputs == {"o1": "<a>", "o2": "[<a>]"}
    assert NodeOutputCache.objects.filter(owner=user).count() == 2
    second = run_graph(graph)
    assert second.outputs == first.outputs
    runs = runs_by_key(graph, second)
    assert runs["t"].status == "cached"
    assert runs["tpl"].status == "cached"
    assert runs["nocache"].status == "succeeded"
    events = events_of(second)
    for key in ("t", "tpl"):
        assert [e for _, e, d in events if d.get("node") == graph.node_ids[key]] == ["node.cached"]


def test_cache_is_per_owner(user, other_user):
    nodes = {"t": ("text", {"text": "same"}), "o": ("output", {"name": "o"})}
    edges = [("t", "text", "o", "value")]
    run_graph(build_graph(user, nodes, edges))
    other = build_graph(other_user, nodes, edges)
    execution = run_graph(other)
    assert runs_by_key(other, execution)["t"].status == "succeeded"


def _edit_between_reads(monkeypatch, graph, *, times):
    """Land an edit of the graph (as graphs.services would: rows and version together) between
    the read of its nodes and the read of its edges, the first ``times`` reads."""
    from django.db import transaction

    from graphs import selectors
    from graphs.models import Graph, Node

    real = selectors._edge_rows.fetch
    reads = []

    def racing(graph_arg):
        if len(reads) < times and not transaction.get_connection().in_atomic_block:
            text = f"edit {len(reads) + 1}"
            Node.objects.filter(pk=graph.node_ids["t"]).update(config={"text": text})
            Graph.objects.filter(pk=graph.pk).update(version=graph.version + len(reads) + 1)
        reads.append(1)
        return real(graph_arg)

    monkeypatch.setattr(selectors._edge_rows, "fetch", racing)
    return reads


@pytest.mark.parametrize(
    ("edits", "reads_expected", "text"),
    [
        (1, 2, "edit 1"),  # one edit between the reads: read again, consistent
        (100, 6, "edit 5"),  # edits never stop: five unlocked reads, then one under the lock
    ],
)
def test_snapshot_is_consistent_when_the_graph_changes_meanwhile(
    user, monkeypatch, edits, reads_expected, text
):
    graph = build_graph(
        user,
        {"t": ("text", {"text": "old"}), "o": ("output", {"name": "o"})},
        [("t", "text", "o", "value")],
    )
    reads = _edit_between_reads(monkeypatch, graph, times=edits)
    execution = execution_create(user=user, graph=graph, inputs={})
    assert len(reads) == reads_expected
    version = 1 + min(edits, reads_expected - 1)
    assert execution.graph_version == execution.snapshot["version"] == version
    assert wait_for(execution).outputs == {"o": text}


def test_identical_nodes_in_one_run_share_one_cache_row(user):
    """Two nodes with the same type, config and inputs have one cache key; their rows reach
    the cache table in one flush (PostgreSQL refuses a statement that upserts a key twice)."""
    graph = build_graph(
        user,
        {
            "a": ("text", {"text": "same"}),
            "b": ("text", {"text": "same"}),
            "oa": ("output", {"name": "a"}),
            "ob": ("output", {"name": "b"}),
        },
        [("a", "text", "oa", "value"), ("b", "text", "ob", "value")],
    )
    execution = run_graph(graph)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == {"a": "same", "b": "same"}
    assert NodeOutputCache.objects.filter(owner=user).count() == 1
