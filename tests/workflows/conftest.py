"""Helpers for engine tests: build graphs with the ORM, run them for real, wait for the end."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import connection

from graphs.models import Edge, Graph
from graphs.models import Node as NodeRow
from graphs.registry import Port, PortType, registry
from tests.fakes.base import FakeServer
from tests.fakes.fixtures import fake_groq, fake_ollama  # noqa: F401 - fixtures for this package
from workflows.models import TERMINAL_STATUSES, Execution
from workflows.nodes.base import Node, NodeCancelled, NodeError
from workflows.services import execution_create


def build_graph(owner, nodes: dict[str, tuple[str, dict]], edges=(), name="g") -> Graph:
    """``nodes``: key → (type, config); ``edges``: (source key, port, target key, port)."""
    graph = Graph.objects.create(owner=owner, name=name)
    rows = {}
    for key, (node_type, config) in nodes.items():
        rows[key] = NodeRow.objects.create(
            graph=graph, id=uuid.uuid4(), type=node_type, label=key, config=config
        )
    for source, source_port, target, target_port in edges:
        Edge.objects.create(
            graph=graph,
            source=rows[source],
            source_port=source_port,
            target=rows[target],
            target_port=target_port,
        )
    graph.node_ids = {key: str(row.id) for key, row in rows.items()}
    return graph


def greeting_graph(owner) -> Graph:
    """``input`` "who" → ``template`` "hi {who}" → ``output`` "greeting"."""
    return build_graph(
        owner,
        {
            "in": ("input", {"name": "who"}),
            "tpl": ("template", {"template": "hi {who}"}),
            "out": ("output", {"name": "greeting"}),
        },
        [("in", "value", "tpl", "who"), ("tpl", "text", "out", "value")],
    )


def wait_for(execution: Execution, timeout: float = 15.0, statuses=TERMINAL_STATUSES) -> Execution:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution.refresh_from_db()
        if execution.status in statuses:
            return execution
        time.sleep(0.02)
    raise AssertionError(f"execution still {execution.status} after {timeout} s")


def run_graph(graph: Graph, inputs=None, timeout: float = 15.0) -> Execution:
    execution = execution_create(user=graph.owner, graph=graph, inputs=inputs or {})
    return wait_for(execution, timeout=timeout)


def events_of(execution: Execution) -> list[tuple[int, str, dict]]:
    return [(e.seq, e.event, e.data) for e in execution.events.order_by("seq")]


def runs_by_key(graph: Graph, execution: Execution) -> dict:
    by_id = {str(r.node_id): r for r in execution.node_runs.all()}
    return {key: by_id.get(node_id) for key, node_id in graph.node_ids.items()}


@pytest.fixture(autouse=True)
def _close_db_after_threads():
    yield
    # Engine threads hold their own connections; a transactional test's flush needs none open
    # on the test database beyond the main thread's.
    connection.close()


@pytest.fixture
def sleep_node():
    """A slow, cancellable node type run in the node pool, registered for one test."""

    class _Sleep(Node):
        type = "test_sleep"
        label = "Sleep"
        blocking = True
        inputs = (Port("value", PortType.ANY, required=False),)
        outputs = (Port("value", PortType.ANY),)
        config_schema = {
            "type": "object",
            "properties": {"seconds": {"type": "number", "default": 0.5}, "fail": {}},
        }
        calls: list = []

        def run(self, ctx):
            type(self).calls.append(ctx.node_id)
            if ctx.cancel_event.wait(ctx.config["seconds"]):
                raise NodeCancelled
            if ctx.config.get("fail"):
                raise NodeError(str(ctx.config["fail"]))
            return {"value": ctx.inputs.get("value", ctx.config["seconds"])}

    registry.register(_Sleep)
    yield _Sleep
    registry.unregister("test_sleep")


class Target(FakeServer):
    """A loopback HTTP target: echoes requests as JSON; /slow trickles a body; /text is text;
    a scripted 3xx redirects to its ``Location`` header."""

    def handle(self, handler, request, behaviour):
        if behaviour.status >= 400:
            handler.send_json(behaviour.status, {"error": "scripted"})
            return
        if behaviour.status >= 300:
            handler.send_bytes(behaviour.status, b"", "text/plain", headers=behaviour.headers)
            return
        if request.path.startswith("/slow"):
            handler.start_chunked(200, "text/plain")
            for _ in range(200):
                if not handler.wait(0.1):
                    return
                handler.write_chunk(b"x")
            handler.end_chunked()
            return
        if request.path.startswith("/nul"):
            handler.send_bytes(200, b"bin\x00ary", "application/octet-stream")
            return
        if request.path.startswith("/text"):
            handler.send_bytes(200, b"plain words", "text/plain; charset=utf-8")
            return
        handler.send_json(
            200,
            {
                "method": request.method,
                "path": request.path,
                "auth": request.headers.get("Authorization"),
                "body": request.body.decode(),
            },
        )
