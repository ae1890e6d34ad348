"""Chat through a real Daphne with a real WebSocket client (``websockets``) and the fake Ollama.

The server is another process: it sees the test's committed rows (transactional tests) and
reaches the fake Ollama over loopback. With REDIS_URL set it broadcasts over Redis.
"""

import json
import threading
import time

import pytest
import requests
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from chat import services
from chat.models import Message
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ollama_fixture
from tests.live import daphne, server_env_for_test_db

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "The sky is blue because of Rayleigh scattering."
LONG_REPLY = " ".join(f"w{i}" for i in range(80))


live_ollama = ollama_fixture("live_ollama", scope="module")


@pytest.fixture(scope="module")
def server(django_db_setup, live_ollama):
    env = server_env_for_test_db(OLLAMA_BASE_URL=live_ollama.url, CANCEL_POLL_SECONDS="0.1")
    with daphne(env) as base_url:
        yield base_url


@pytest.fixture
def token(user):
    return Token.objects.create(user=user).key


def ws_url(server, token):
    return server.replace("http://", "ws://") + f"/ws/?token={token}"


def frames_until_done(ws, timeout=10.0):
    frames = []
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if frame["type"] == "heartbeat":
            continue
        frames.append(frame)
        if frame["type"] in {"chat.done", "error"}:
            return frames


def subscribe(ws, conversation):
    ws.send(json.dumps({"type": "subscribe", "topic": f"conversation:{conversation.pk}"}))
    assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"


def test_a_real_client_streams_a_reply(server, token, conversation):
    with connect(ws_url(server, token)) as ws:
        ws.send(
            json.dumps(
                {
                    "type": "chat.send",
                    "conversation": str(conversation.pk),
                    "content": "Why is the sky blue?",
                    "request_id": "live-1",
                }
            )
        )
        frames = frames_until_done(ws)

    *tokens, done = frames
    assert done["type"] == "chat.done"
    assert done["request_id"] == "live-1"
    assert "".join(t["text"] for t in tokens) == REPLY
    ends = [t["index"] + t["count"] for t in tokens]
    assert [t["index"] for t in tokens] == [0, *ends[:-1]]
    message = Message.objects.get(pk=done["message"]["id"])
    assert (message.status, message.content) == ("complete", REPLY)
    assert message.usage["completion_tokens"] == ends[-1]


def test_two_real_clients_and_a_cancel_from_the_second(server, token, conversation, live_ollama):
    live_ollama.enqueue(Behaviour(reply=LONG_REPLY, token_interval=0.03))
    with connect(ws_url(server, token)) as first, connect(ws_url(server, token)) as second:
        subscribe(first, conversation)
        subscribe(second, conversation)
        first.send(
            json.dumps(
                {
                    "type": "chat.send",
                    "conversation": str(conversation.pk),
                    "content": "count",
                    "request_id": "a",
                }
            )
        )
        assert json.loads(second.recv(timeout=5))["type"] == "chat.token"
        second.send(json.dumps({"type": "chat.cancel", "conversation": str(conversation.pk)}))

        first_frames = frames_until_done(first)
        second_frames = frames_until_done(second)

    done = first_frames[-1]
    assert done["message"]["status"] == "cancelled"
    received = "".join(f["text"] for f in first_frames if f["type"] == "chat.token")
    assert done["message"]["content"] == received
    assert len(received.split()) < 80
    # The second client saw the same stream (its first token was read before the loop).
    assert second_frames[-1] == done
    message = Message.objects.get(pk=done["message"]["id"])
    assert (message.status, message.content) == ("cancelled", received)


def test_rest_send_through_daphne_streams_to_a_subscriber(server, token, user):
    conversation = services.conversation_create(owner=user, provider="ollama", model="llama3.2")
    with connect(ws_url(server, token)) as ws:
        subscribe(ws, conversation)
        result = {}

        def post():
            result["response"] = requests.post(
                f"{server}/api/conversations/{conversation.pk}/messages/",
                json={"content": "hello"},
                headers={"Authorization": f"Token {token}"},
                timeout=20,
            )

        thread = threading.Thread(target=post)
        thread.start()
        frames = frames_until_done(ws)
        thread.join(timeout=20)

    response = result["response"]
    assert response.status_code == 201
    body = response.json()
    assert body["assistant_message"]["content"] == REPLY
    assert frames[-1]["message"]["id"] == body["assistant_message"]["id"]
    assert "".join(f["text"] for f in frames[:-1]) == REPLY


@pytest.mark.redis
def test_cancel_sent_to_another_server_process(server, token, conversation, live_ollama):
    """Client A streams through one Daphne; client B, on a second Daphne, sees the frames over
    Redis and cancels: the first process's watcher sees the flag and stops the stream."""
    env = server_env_for_test_db(OLLAMA_BASE_URL=live_ollama.url)
    live_ollama.enqueue(Behaviour(reply=LONG_REPLY, token_interval=0.05))
    with (
        daphne(env) as other_server,
        connect(ws_url(server, token)) as first,
        connect(ws_url(other_server, token)) as second,
    ):
        subscribe(second, conversation)
        first.send(
            json.dumps(
                {
                    "type": "chat.send",
                    "conversation": str(conversation.pk),
                    "content": "count",
                    "request_id": "x",
                }
            )
        )
        assert json.loads(second.recv(timeout=5))["type"] == "chat.token"
        second.send(json.dumps({"type": "chat.cancel", "conversation": str(conversation.pk)}))
        started = time.monotonic()
        first_frames = frames_until_done(first)
        elapsed = time.monotonic() - started
        second_frames = frames_until_done(second)

    done = first_frames[-1]
    assert done["message"]["status"] == "cancelled"
    assert second_frames[-1] == done
    assert elapsed < 1.5
    received = "".join(f["text"] for f in first_frames if f["type"] == "chat.token")
    assert Message.objects.get(pk=done["message"]["id"]).content == received
