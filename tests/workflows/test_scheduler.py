"""The scheduler alone: plain data in and out, no database, no threads."""

from workflows.scheduler import CACHED, CANCELLED, RUNNING, SUCCEEDED, Edge, NodeSpec, Scheduler


def chain(*specs: NodeSpec, edges=()) -> Scheduler:
    return Scheduler(specs, [Edge(*edge) for edge in edges])


def test_nodes_without_inputs_are_ready_first_in_order():
    schedule = chain(NodeSpec("a"), NodeSpec("b"), NodeSpec("c"), edges=[("a", "x", "c", "x")])
    assert schedule.initially_ready() == ["a", "b"]


def test_values_travel_along_edges_and_a_node_waits_for_all_of_its_inputs():
    schedule = chain(
        NodeSpec("a"),
        NodeSpec("b"),
        NodeSpec("t", required=frozenset({"x", "y"})),
        edges=[("a", "out", "t", "x"), ("b", "out", "t", "y")],
    )

    assert schedule.produced("a", {"out": 1}, status=SUCCEEDED) == []
    assert schedule.produced("b", {"out": 2}, status=CACHED) == [("t", "ready")]
    assert schedule.inputs["t"] == {"x": 1, "y": 2}


def test_the_branch_not_taken_is_skipped_down_to_where_it_joins_optional_ports():
    # cond --true--> yes --> join.x (required)
    # cond --false-> no  --> after.value (required) --> join.extra (optional)
    schedule = chain(
        NodeSpec("cond"),
        NodeSpec("yes", required=frozenset({"value"})),
        NodeSpec("no", required=frozenset({"value"})),
        NodeSpec("after", required=frozenset({"value"})),
        NodeSpec("join", required=frozenset({"x"})),
        edges=[
            ("cond", "true", "yes", "value"),
            ("cond", "false", "no", "value"),
            ("no", "value", "after", "value"),
            ("yes", "value", "join", "x"),
            ("after", "value", "join", "extra"),
        ],
    )

    decided = schedule.produced("cond", {"true": "v"}, status=SUCCEEDED)

    assert decided == [("no", "skipped"), ("after", "skipped"), ("yes", "ready")]
    assert schedule.produced("yes", {"value": "v"}, status=SUCCEEDED) == [("join", "ready")]
    assert schedule.inputs["join"] == {"x": "v"}  # the dead optional port is absent


def test_a_node_reachable_only_through_dead_edges_is_skipped_even_with_optional_ports():
    schedule = chain(NodeSpec("cond"), NodeSpec("opt"), edges=[("cond", "false", "opt", "maybe")])
    assert schedule.produced("cond", {"true": 1}, status=SUCCEEDED) == [("opt", "skipped")]


def test_final_outputs_are_the_collecting_nodes_that_produced():
    schedule = chain(
        NodeSpec("a"),
        NodeSpec("out1", collects="first"),
        NodeSpec("out2", collects="second"),
        NodeSpec("cond"),
        edges=[("a", "v", "out1", "value"), ("cond", "false", "out2", "value")],
    )
    schedule.produced("a", {"v": 42}, status=SUCCEEDED)
    schedule.produced("out1", {"value": 42}, status=SUCCEEDED)
    schedule.produced("cond", {"true": 0}, status=SUCCEEDED)

    assert schedule.final_outputs() == {"first": 42}


def test_unfinished_nodes_are_those_never_decided_or_still_running():
    schedule = chain(
        NodeSpec("a"), NodeSpec("b"), NodeSpec("c"), NodeSpec("d"), edges=[("a", "v", "b", "v")]
    )
    schedule.mark("a", RUNNING)
    schedule.mark("c", CANCELLED)
    schedule.adopt("d", SUCCEEDED, {"v": 1})
    schedule.adopt("d", CANCELLED, None)  # a status already known is kept

    assert schedule.unfinished() == ["a", "b"]
    assert schedule.status["d"] == SUCCEEDED


def test_from_snapshot_reads_the_execution_document():
    snapshot = {
        "nodes": [{"id": "n1", "type": "text"}, {"id": "n2", "type": "output"}],
        "edges": [{"source": "n1", "source_port": "text", "target": "n2", "target_port": "value"}],
    }
    schedule = Scheduler.from_snapshot(
        snapshot,
        required={"n2": ["value"]},
        collects=lambda node: "out" if node["type"] == "output" else None,
    )
    assert schedule.initially_ready() == ["n1"]
    assert schedule.produced("n1", {"text": "hi"}, status=SUCCEEDED) == [("n2", "ready")]
    schedule.produced("n2", {"value": "hi"}, status=SUCCEEDED)
    assert schedule.final_outputs() == {"out": "hi"}


def test_the_scheduler_needs_neither_django_nor_threads():
    import ast
    from pathlib import Path

    import workflows.scheduler

    tree = ast.parse(Path(workflows.scheduler.__file__).read_text())
    imported = {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported <= {"__future__", "collections", "dataclasses", "typing"}
