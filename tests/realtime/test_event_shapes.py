"""Every event the apps publish has the shape docs/realtime.md ("Event reference") gives it.

One test per event name of ``canvas.core.events``: the event is produced for real (a run, a
graph edit, a chat reply), captured in this process with ``canvas.core.publisher.listen``, and
its data keys are compared with the documented ones (Zulip's ``test_events.py`` does the same
for its event types).
"""

from __future__ import annotations

import re
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
from django.db import transaction

from canvas.core import events
from canvas.core.publisher import listen
from chat import services as chat_services
from chat.realtime import conversation_emitter
from chat.replies import reply_run
from graphs import services as graph_services
from graphs.registry import Port, PortType, registry
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import fake_ollama  # noqa: F401 - fixture
from tests.live import BASE_DIR
from workflows.engine import execution_run
from workflows.nodes.base import Node
from workflows.services import execution_cancel, execution_create

pytestmark = pytest.mark.django_db(transaction=True)

ROW = re.compile(r"^\| `([a-z.]+)` \| (\w+) \| `([^`]*)` \|$")


def documented() -> dict[str, tuple[str, set[str], set[str]]]:
    """event name → (topic kind, required keys, optional keys) from docs/realtime.md."""
    text = (Path(BASE_DIR) / "docs" / "realtime.md").read_text()
    section = text.split("## Event reference", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        match = ROW.match(line.strip())
        if match:
            name, kind, keys = match.groups()
            names = [k.strip() for k in keys.split(",") if k.strip()]
            required = {k for k in names if not k.endswith("?")}
            optional = {k.rstrip("?") for k in names if k.endswith("?")}
            table[name] = (kind, required, optional)
    return table


ALL_EVENTS = [(kind, name) for kind, names in events.EVENTS.items() for name in names]


def test_the_reference_lists_exactly_the_events_of_the_names_module():
    table = documented()
    assert len(table) == len(ALL_EVENTS)  # no name serves two topic kinds
    assert {(kind, name) for name, (kind, _r, _o) in table.items()} == set(ALL_EVENTS)


# --- producing the events --------------------------------------------------------------------


class _Flaky(Node):
    """Streams a token, reports a retry, streams again, succeeds."""

    type = "test_flaky"
    label = "Flaky"
    blocking = True
    outputs = (Port("value", PortType.TEXT),)

    def run(self, ctx):
        ctx.emit_token("a")
        ctx.retrying("the stream broke")
        ctx.emit_token("b")
        return {"value": "b"}


def _graph(user, nodes, edges=()):
    saved = graph_services.graph_create(
        owner=user,
        name="shapes",
        nodes=[{"id": key, "type": t, "label": key, "config": c} for key, (t, c) in nodes.items()],
        edges=[
            {"source": s, "source_port": sp, "target": t, "target_port": tp}
            for s, sp, t, tp in edges
        ],
    )
    return saved.graph


def _run(user, graph, *, cancel=False) -> list[dict]:
    """Queue a run and take it to its end in this thread; every message of its topic."""
    messages: list[dict] = []
    with ExitStack() as stack:
        with transaction.atomic():
            execution = execution_create(user=user, graph=graph, inputs={}, dispatch=False)
            stack.enter_context(listen(events.execution_topic(execution.id), messages.append))
        if cancel:
            execution_cancel(execution=execution)
        else:
            execution_run(execution.id)
    return messages


def _ids(*names):
    return {name: str(uuid.uuid4()) for name in names}


def scenario_branch(user, **_):
    n = _ids("text", "cond", "yes", "no")
    graph = _graph(
        user,
        {
            n["text"]: ("text", {"text": "hi"}),
            n["cond"]: ("condition", {"operator": "truthy"}),
            n["yes"]: ("output", {"name": "yes"}),
            n["no"]: ("output", {"name": "no"}),
        },
        [
            (n["text"], "text", n["cond"], "value"),
            (n["cond"], "true", n["yes"], "value"),
            (n["cond"], "false", n["no"], "value"),
        ],
    )
    return _run(user, graph) + _run(user, graph)  # the second run answers from the cache


def scenario_failure(user, **_):
    n = _ids("text", "extract")
    graph = _graph(
        user,
        {n["text"]: ("text", {"text": "plain"}), n["extract"]: ("extract", {"path": "a.b"})},
        [(n["text"], "text", n["extract"], "data")],
    )
    return _run(user, graph)


def scenario_cancel(user, **_):
    graph = _graph(user, {_ids("t")["t"]: ("text", {"text": "x"})})
    return _run(user, graph, cancel=True)


def scenario_stream(user, **_):
    registry.register(_Flaky)
    try:
        graph = _graph(user, {_ids("f")["f"]: ("test_flaky", {})})
        return _run(user, graph)
    finally:
        registry.unregister(_Flaky.type)


def scenario_graph(user, **_):
    a, b, c, edge = _ids("a", "b", "c", "edge").values()
    saved = graph_services.graph_create(
        owner=user,
        name="edits",
        nodes=[
            {"id": a, "type": "text", "config": {"text": "x"}},
            {"id": b, "type": "output", "config": {"name": "o"}},
        ],
    )
    graph_id = saved.graph.pk
    messages: list[dict] = []
    with listen(events.graph_topic(graph_id), messages.append):
        graph_services.node_create(
            user=user, graph_id=graph_id, data={"id": c, "type": "text", "config": {}}
        )
        graph_services.node_update(user=user, graph_id=graph_id, node_id=c, data={"label": "C"})
        graph_services.edge_create(
            user=user,
            graph_id=graph_id,
            data={
                "id": edge,
                "source": a,
                "source_port": "text",
                "target": b,
                "target_port": "value",
            },
        )
        graph_services.edge_update(user=user, graph_id=graph_id, edge_id=edge, data={"source": c})
        graph_services.edge_delete(user=user, graph_id=graph_id, edge_id=edge)
        graph_services.node_delete(user=user, graph_id=graph_id, node_id=c)
        graph_services.graph_update(user=user, graph_id=graph_id, name="renamed")
        graph_services.graph_delete(user=user, graph_id=graph_id)
    return messages


def scenario_chat(user, *, ollama, settings):
    settings.OLLAMA_BASE_URL = ollama.url
    ollama.enqueue(Behaviour(reply="hello there"))
    conversation = chat_services.conversation_create(
        owner=user, provider="ollama", model="llama3.2"
    )
    turn = chat_services.message_begin(user=user, conversation_id=conversation.pk, content="hi")
    messages: list[dict] = []
    with listen(events.conversation_topic(conversation.pk), messages.append):
        reply_run(turn=turn, emit=conversation_emitter(conversation.pk))
    return messages


SCENARIOS = {
    events.EXECUTION_QUEUED: scenario_branch,
    events.EXECUTION_STARTED: scenario_branch,
    events.NODE_STARTED: scenario_branch,
    events.NODE_TOKEN: scenario_stream,
    events.NODE_RETRYING: scenario_stream,
    events.NODE_CACHED: scenario_branch,
    events.NODE_COMPLETED: scenario_branch,
    events.NODE_FAILED: scenario_failure,
    events.NODE_SKIPPED: scenario_branch,
    events.EXECUTION_COMPLETED: scenario_branch,
    events.EXECUTION_FAILED: scenario_failure,
    events.EXECUTION_CANCELLED: scenario_cancel,
    events.CHAT_TOKEN: scenario_chat,
    events.CHAT_DONE: scenario_chat,
}
# Messages a scenario published, kept for the other events it also produces.
_produced: dict[object, list[dict]] = {}


def _messages(kind, name, user, fake_ollama, settings):  # noqa: F811
    scenario = scenario_graph if kind == events.GRAPH else SCENARIOS[name]
    if scenario not in _produced:
        _produced[scenario] = scenario(user, ollama=fake_ollama, settings=settings)
    return _produced[scenario]


@pytest.mark.parametrize(("kind", "name"), ALL_EVENTS, ids=[f"{k}:{n}" for k, n in ALL_EVENTS])
def test_event_shape_matches_the_docs(kind, name, user, fake_ollama, settings):  # noqa: F811
    table = documented()
    assert name in table, f"{name} is not in docs/realtime.md's event reference"
    doc_kind, required, optional = table[name]
    assert doc_kind == kind

    messages = _messages(kind, name, user, fake_ollama, settings)

    found = []
    for message in messages:
        if message["type"] == "realtime.frame":
            frame = dict(message["frame"])
            if frame.pop("type") == name:
                found.append(set(frame))
        elif message["event"] == name:
            assert message["topic"].startswith(f"{kind}:")
            found.append(set(message["data"]))
    assert found, f"the scenario published no {name}: {messages}"
    for keys in found:
        assert required <= keys <= required | optional, (name, keys)
