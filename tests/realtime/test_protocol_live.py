"""The socket protocol with a real client (the websockets package) against a live Daphne."""

import json
import time

import pytest
import requests
from django.test import Client
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.fakes.base import Behaviour
from tests.workflows.conftest import build_graph

pytestmark = pytest.mark.django_db(transaction=True)

FINAL = {"execution.completed", "execution.failed", "execution.cancelled"}


def ws_url(base_url: str, query: str = "") -> str:
    return base_url.replace("http://", "ws://") + "/ws/" + query


def token_of(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def recv(ws, timeout=10) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def close_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    return closed.value.rcvd.code


def events_until_final(ws, timeout=15) -> list[dict]:
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = recv(ws)
        if frame["type"] != "event":
            continue
        frames.append(frame)
        if frame["event"] in FINAL:
            return frames
    raise AssertionError("no terminal event")


def llm_graph(user, name="live"):
    return build_graph(
        user,
        {
            "p": ("text", {"text": "Why is the sky blue?"}),
            "llm": ("llm", {"provider": "ollama", "model": "llama3.2"}),
            "out": ("output", {"name": "answer"}),
        },
        [("p", "text", "llm", "prompt"), ("llm", "text", "out", "value")],
        name=name,
    )


def start_run(served, user, graph) -> str:
    response = requests.post(
        f"{served}/api/graphs/{graph.id}/executions/",
        json={"inputs": {}},
        headers={"Authorization": f"Token {token_of(user)}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


# --- auth ------------------------------------------------------------------------------------


def test_token_auth(served, user):
    with connect(ws_url(served, f"?token={token_of(user)}")) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert recv(ws) == {"type": "pong"}


def test_no_credentials_is_closed_with_4401(served):
    with connect(ws_url(served)) as ws:
        assert close_code(ws) == 4401


def test_session_cookie_from_a_browser_origin(served, user):
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    with connect(ws_url(served), origin=served, additional_headers={"Cookie": cookie}) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert recv(ws) == {"type": "pong"}


def test_foreign_origin_is_closed_with_4403(served, user):
    query = f"?token={token_of(user)}"
    with connect(ws_url(served, query), origin="http://evil.example") as ws:
        assert close_code(ws) == 4403


# --- executions ------------------------------------------------------------------------------


def test_run_finishing_mid_subscription_arrives_gapless(served, module_ollama, user):
    module_ollama.enqueue(Behaviour(token_interval=0.02), path="/api/chat")
    graph = llm_graph(user)
    with connect(ws_url(served, f"?token={token_of(user)}")) as ws:
        execution_id = start_run(served, user, graph)
        ws.send(json.dumps({"type": "subscribe", "topic": f"execution:{execution_id}", "after": 0}))
        assert recv(ws)["type"] == "subscribed"
        frames = events_until_final(ws)

    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == list(range(1, len(seqs) + 1))
    assert frames[-1]["event"] == "execution.completed"
    assert any(f["event"] == "node.token" for f in frames)
    logged = requests.get(
        f"{served}/api/executions/{execution_id}/events/",
        headers={"Authorization": f"Token {token_of(user)}"},
        timeout=10,
    ).json()
    logged = logged.get("results", logged)
    assert [e["seq"] for e in logged] == seqs


def test_reconnect_with_after_misses_nothing(served, module_ollama, user):
    module_ollama.enqueue(Behaviour(token_interval=0.05), path="/api/chat")
    graph = llm_graph(user)
    token = token_of(user)
    with connect(ws_url(served, f"?token={token}")) as ws:
        execution_id = start_run(served, user, graph)
        ws.send(json.dumps({"type": "subscribe", "topic": f"execution:{execution_id}", "after": 0}))
        recv(ws)
        first = []
        while len(first) < 3:
            frame = recv(ws)
            if frame["type"] == "event" and "seq" in frame:
                first.append(frame["seq"])
    assert first == [1, 2, 3]

    with connect(ws_url(served, f"?token={token}")) as ws:
        ws.send(json.dumps({"type": "subscribe", "topic": f"execution:{execution_id}", "after": 3}))
        recv(ws)
        rest = [f["seq"] for f in events_until_final(ws) if "seq" in f]
    assert rest == list(range(4, rest[-1] + 1))


def test_another_users_execution_is_not_found(served, user, other_user):
    graph = build_graph(other_user, {"t": ("text", {"text": "x"})}, [], name="theirs")
    execution_id = start_run(served, other_user, graph)
    with connect(ws_url(served, f"?token={token_of(user)}")) as ws:
        ws.send(json.dumps({"type": "subscribe", "topic": f"execution:{execution_id}"}))
        reply = recv(ws)
    assert reply["type"] == "error"
    assert reply["code"] == "not_found"


def test_cancel_over_the_socket(served, module_ollama, user):
    module_ollama.enqueue(
        Behaviour(reply=" ".join(["slow"] * 200), token_interval=0.05), path="/api/chat"
    )
    graph = llm_graph(user)
    with connect(ws_url(served, f"?token={token_of(user)}")) as ws:
        execution_id = start_run(served, user, graph)
        ws.send(json.dumps({"type": "subscribe", "topic": f"execution:{execution_id}", "after": 0}))
        recv(ws)
        while recv(ws).get("event") != "node.token":
            pass
        ws.send(json.dumps({"type": "execution.cancel", "execution": execution_id}))
        frames = events_until_final(ws, timeout=5)
    assert frames[-1]["event"] == "execution.cancelled"


# --- graphs ----------------------------------------------------------------------------------


def test_graph_change_over_rest_is_broadcast_to_two_sockets(served, user):
    graph = build_graph(user, {"t": ("text", {"text": "x"})}, [], name="shared")
    topic = f"graph:{graph.id}"
    url = ws_url(served, f"?token={token_of(user)}")
    with connect(url) as first, connect(url) as second:
        for ws in (first, second):
            ws.send(json.dumps({"type": "subscribe", "topic": topic}))
            assert recv(ws)["snapshot"] == {"version": graph.version}
        response = requests.post(
            f"{served}/api/graphs/{graph.id}/nodes/",
            json={"type": "text", "label": "new", "config": {"text": "y"}},
            headers={"Authorization": f"Token {token_of(user)}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        for ws in (first, second):
            frame = recv(ws)
            assert (frame["event"], frame["topic"]) == ("node.created", topic)
            assert frame["data"]["node"]["id"] == response.json()["id"]
            assert frame["seq"] == graph.version + 1
