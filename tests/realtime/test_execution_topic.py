"""The execution:<id> topic through Channels' communicator, with the inline executor."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from canvas.asgi import application
from tests.fakes.base import Behaviour
from tests.workflows.conftest import build_graph, wait_for
from workflows.models import ExecutionEvent
from workflows.services import execution_create

pytestmark = pytest.mark.django_db(transaction=True)

FINAL = {"execution.completed", "execution.failed", "execution.cancelled"}


@pytest.fixture
def ollama(fake_ollama, settings):
    settings.OLLAMA_BASE_URL = fake_ollama.url
    return fake_ollama


def llm_graph(user):
    return build_graph(
        user,
        {
            "p": ("text", {"text": "Why is the sky blue?"}),
            "llm": ("llm", {"provider": "ollama", "model": "llama3.2"}),
            "out": ("output", {"name": "answer"}),
        },
        [("p", "text", "llm", "prompt"), ("llm", "text", "out", "value")],
    )


async def socket_for(user):
    token = await database_sync_to_async(lambda: Token.objects.get_or_create(user=user)[0])()
    communicator = WebsocketCommunicator(application, f"/ws/?token={token.key}")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def frames_until_final(communicator, timeout=10):
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame.get("type") == "event" and frame["event"] in FINAL:
            return frames


def persisted_seqs(execution):
    return list(ExecutionEvent.objects.filter(execution=execution).values_list("seq", flat=True))


async def test_subscribe_during_a_run_gets_every_event_once_in_order(user, ollama):
    ollama.enqueue(Behaviour(token_interval=0.02), path="/api/chat")
    graph = await database_sync_to_async(llm_graph)(user)
    sock = await socket_for(user)

    execution = await database_sync_to_async(execution_create)(user=user, graph=graph, inputs={})
    await sock.send_json_to({"type": "subscribe", "topic": f"execution:{execution.id}", "after": 0})
    subscribed = await sock.receive_json_from(timeout=5)
    assert subscribed["type"] == "subscribed"
    assert set(subscribed["snapshot"]) == {"status", "nodes", "last_seq"}

    frames = await frames_until_final(sock)
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seqs == await database_sync_to_async(persisted_seqs)(execution)
    assert frames[-1]["event"] == "execution.completed"
    tokens = [f for f in frames if f["event"] == "node.token"]
    assert tokens, "tokens are relayed live"
    assert all("seq" not in f for f in tokens)
    assert "".join(f["data"]["text"] for f in tokens).startswith("The sky is blue")
    assert await sock.receive_nothing(timeout=0.3)
    await sock.disconnect()


async def test_subscribe_after_the_run_finished_replays_from_after(user):
    graph = await database_sync_to_async(build_graph)(
        user,
        {"t": ("text", {"text": "hi"}), "out": ("output", {"name": "o"})},
        [("t", "text", "out", "value")],
    )
    execution = await database_sync_to_async(execution_create)(user=user, graph=graph, inputs={})
    execution = await database_sync_to_async(wait_for)(execution)
    total = len(await database_sync_to_async(persisted_seqs)(execution))
    sock = await socket_for(user)

    await sock.send_json_to({"type": "subscribe", "topic": f"execution:{execution.id}", "after": 2})
    subscribed = await sock.receive_json_from(timeout=5)
    assert subscribed["snapshot"]["status"] == "succeeded"
    assert subscribed["snapshot"]["last_seq"] == total
    assert set(subscribed["snapshot"]["nodes"].values()) == {"succeeded"}
    frames = await frames_until_final(sock)
    assert [f["seq"] for f in frames] == list(range(3, total + 1))

    # Without `after`: the snapshot alone, no replay.
    await sock.send_json_to({"type": "subscribe", "topic": f"execution:{execution.id}"})
    assert (await sock.receive_json_from(timeout=5))["type"] == "subscribed"
    assert await sock.receive_nothing(timeout=0.3)
    await sock.disconnect()


async def test_another_users_execution_is_not_found(user, other_user):
    graph = await database_sync_to_async(build_graph)(
        other_user, {"t": ("text", {"text": "x"})}, []
    )
    execution = await database_sync_to_async(execution_create)(
        user=other_user, graph=graph, inputs={}
    )
    sock = await socket_for(user)
    for message in (
        {"type": "subscribe", "topic": f"execution:{execution.id}"},
        {"type": "execution.cancel", "execution": str(execution.id), "request_id": "c1"},
        {"type": "execution.cancel", "execution": "not-a-uuid"},
    ):
        await sock.send_json_to(message)
        reply = await sock.receive_json_from(timeout=5)
        assert reply["type"] == "error"
        assert reply["code"] == "not_found"
    await sock.send_json_to({"type": "execution.cancel"})
    assert (await sock.receive_json_from(timeout=5))["code"] == "invalid"
    await sock.disconnect()
    await database_sync_to_async(wait_for)(execution)


async def test_cancel_over_the_socket_ends_the_run_cancelled(user, ollama):
    ollama.enqueue(Behaviour(reply=" ".join(["slow"] * 100), token_interval=0.1), path="/api/chat")
    graph = await database_sync_to_async(llm_graph)(user)
    sock = await socket_for(user)
    execution = await database_sync_to_async(execution_create)(user=user, graph=graph, inputs={})
    await sock.send_json_to({"type": "subscribe", "topic": f"execution:{execution.id}", "after": 0})
    await sock.receive_json_from(timeout=5)

    while (await sock.receive_json_from(timeout=5))["event"] != "node.token":
        pass
    await sock.send_json_to({"type": "execution.cancel", "execution": str(execution.id)})

    frames = await frames_until_final(sock, timeout=3)
    assert frames[-1]["event"] == "execution.cancelled"
    execution = await database_sync_to_async(wait_for)(execution)
    assert execution.status == "cancelled"
    await sock.disconnect()
