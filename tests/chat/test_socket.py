"""Chat over /ws/: chat.send streams tokens then chat.done; chat.cancel; two sockets; 404s.

WebsocketCommunicator against canvas.asgi.application, the fake Ollama on loopback. The
streaming thread writes through its own database connection, so these tests commit.
"""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from canvas.asgi import application
from chat import services
from chat.models import Message
from tests.fakes.base import Behaviour

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "The sky is blue because of Rayleigh scattering."
TOKENS = ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering."]
LONG_REPLY = " ".join(f"w{i}" for i in range(60))


@pytest.fixture
def token(user):
    return Token.objects.create(user=user).key


@pytest.fixture
def other_token(other_user):
    return Token.objects.create(user=other_user).key


async def open_socket(token):
    communicator = WebsocketCommunicator(application, f"/ws/?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.fixture
async def sock(token):
    communicator = await open_socket(token)
    yield communicator
    await communicator.disconnect()


@pytest.fixture
async def sock2(token):
    communicator = await open_socket(token)
    yield communicator
    await communicator.disconnect()


async def subscribe(communicator, conversation):
    await communicator.send_json_to(
        {"type": "subscribe", "topic": f"conversation:{conversation.pk}"}
    )
    reply = await communicator.receive_json_from(timeout=5)
    assert reply["type"] == "subscribed", reply
    return reply


async def until_done(communicator, timeout=10.0):
    """Every frame up to and including chat.done (or an error)."""
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame["type"] in {"chat.done", "error"}:
            return frames


def send_frame(conversation, content="Why is the sky blue?", request_id="r1"):
    return {
        "type": "chat.send",
        "conversation": str(conversation.pk),
        "content": content,
        "request_id": request_id,
    }


def check_stream(frames, conversation, request_id="r1", tokens=TOKENS):
    *token_frames, done = frames
    assert done["type"] == "chat.done"
    assert done["request_id"] == request_id
    message = done["message"]
    assert {f["type"] for f in token_frames} == {"chat.token"}
    # Tokens queued behind each other may travel as one frame: appended in order, the same text.
    assert "".join(f["text"] for f in token_frames) == "".join(tokens)
    ends = [f["index"] + f["count"] for f in token_frames]
    assert [f["index"] for f in token_frames] == [0, *ends[:-1]]
    assert ends[-1] == len(tokens)
    for frame in token_frames:
        assert frame["conversation"] == str(conversation.pk)
        assert frame["message"] == message["id"]
        assert frame["request_id"] == request_id
    return message


@database_sync_to_async
def stored(message_id):
    return Message.objects.get(pk=message_id)


# --- streaming -----------------------------------------------------------------------------


async def test_send_streams_tokens_then_done_to_an_unsubscribed_sender(sock, conversation, ollama):
    await sock.send_json_to(send_frame(conversation))

    message = check_stream(await until_done(sock), conversation)

    assert message["status"] == "complete"
    assert message["content"] == REPLY
    assert message["usage"]["completion_tokens"] == len(TOKENS)
    row = await stored(message["id"])
    assert row.status == "complete"
    assert row.content == REPLY
    assert await sock.receive_nothing(timeout=0.3)  # each frame once


async def test_subscribed_sender_gets_each_frame_once(sock, conversation, ollama):
    snapshot = await subscribe(sock, conversation)
    assert snapshot["snapshot"] == {"streaming": []}

    await sock.send_json_to(send_frame(conversation))

    check_stream(await until_done(sock), conversation)
    assert await sock.receive_nothing(timeout=0.3)


async def test_two_sockets_on_one_conversation_both_see_the_stream_once(
    sock, sock2, conversation, ollama
):
    await subscribe(sock, conversation)
    await subscribe(sock2, conversation)

    await sock.send_json_to(send_frame(conversation))

    first = check_stream(await until_done(sock), conversation)
    second = check_stream(await until_done(sock2), conversation)
    assert first == second
    assert await sock.receive_nothing(timeout=0.3)
    assert await sock2.receive_nothing(timeout=0.1)


async def test_a_subscriber_sees_a_stream_sent_by_an_unsubscribed_socket(
    sock, sock2, conversation, ollama
):
    await subscribe(sock2, conversation)

    await sock.send_json_to(send_frame(conversation))

    check_stream(await until_done(sock), conversation)
    check_stream(await until_done(sock2), conversation)
    assert await sock.receive_nothing(timeout=0.3)
    assert await sock2.receive_nothing(timeout=0.1)


async def test_rest_send_streams_to_subscribers(sock, conversation, ollama, api_client):
    await subscribe(sock, conversation)

    response = await database_sync_to_async(api_client.post)(
        f"/api/conversations/{conversation.pk}/messages/", {"content": "hi"}, format="json"
    )

    assert response.status_code == 201
    message = check_stream(await until_done(sock), conversation, request_id=None)
    assert message["id"] == response.json()["assistant_message"]["id"]


async def test_provider_failure_ends_with_done_carrying_the_failed_message(sock, user, ollama):
    conversation = await database_sync_to_async(services.conversation_create)(
        owner=user, provider="ollama", model="mistral"
    )
    await sock.send_json_to(send_frame(conversation))

    frames = await until_done(sock)

    assert [f["type"] for f in frames] == ["chat.done"]
    message = frames[0]["message"]
    assert message["status"] == "failed"
    assert message["error"]["code"] == "model_not_found"
    assert "ollama pull mistral" in message["error"]["message"]


async def test_the_call_runs_outside_the_consumers_database_thread(
    sock, sock2, conversation, ollama
):
    # The first token takes 2 s. Were the call in Channels' one shared database thread, the
    # other socket's subscribe (a database call) and this socket would wait for it.
    ollama.enqueue(Behaviour(first_token_delay=2.0))
    await sock.send_json_to(send_frame(conversation))
    await asyncio.sleep(0.2)

    started = time.monotonic()
    await subscribe(sock2, conversation)
    await sock.send_json_to({"type": "ping"})
    assert await sock.receive_json_from(timeout=5) == {"type": "pong"}
    assert time.monotonic() - started < 1.0

    check_stream(await until_done(sock), conversation)


# --- cancel --------------------------------------------------------------------------------


async def test_cancel_mid_stream_stores_what_arrived(sock, conversation, ollama):
    ollama.enqueue(Behaviour(reply=LONG_REPLY, token_interval=0.05))
    await sock.send_json_to(send_frame(conversation))
    frames = [await sock.receive_json_from(timeout=5) for _ in range(3)]
    assert [f["type"] for f in frames] == ["chat.token"] * 3

    await sock.send_json_to(
        {"type": "chat.cancel", "conversation": str(conversation.pk), "request_id": "c1"}
    )
    frames += await until_done(sock)

    done = frames[-1]
    assert done["request_id"] == "r1"
    message = done["message"]
    received = "".join(f["text"] for f in frames if f["type"] == "chat.token")
    assert message["status"] == "cancelled"
    assert message["content"] == received
    assert 3 <= len(received.split()) < 60
    row = await stored(message["id"])
    assert (row.status, row.content) == ("cancelled", received)


async def test_cancel_from_another_socket(sock, sock2, conversation, ollama):
    ollama.enqueue(Behaviour(reply=LONG_REPLY, token_interval=0.05))
    await subscribe(sock2, conversation)
    await sock.send_json_to(send_frame(conversation))
    assert (await sock2.receive_json_from(timeout=5))["type"] == "chat.token"

    await sock2.send_json_to({"type": "chat.cancel", "conversation": str(conversation.pk)})

    assert (await until_done(sock))[-1]["message"]["status"] == "cancelled"
    assert (await until_done(sock2))[-1]["message"]["status"] == "cancelled"


async def test_cancel_flag_from_another_process_is_seen_by_the_watcher(
    sock, conversation, ollama, settings
):
    settings.CANCEL_POLL_SECONDS = 0.05
    ollama.enqueue(Behaviour(reply=LONG_REPLY, token_interval=0.05))
    await sock.send_json_to(send_frame(conversation))
    first = await sock.receive_json_from(timeout=5)

    # What a chat.cancel handled by another process leaves behind: only the flag.
    await database_sync_to_async(
        lambda: Message.objects.filter(pk=first["message"]).update(cancel_requested=True)
    )()
    started = time.monotonic()
    frames = await until_done(sock)

    assert time.monotonic() - started < 1.0
    assert frames[-1]["message"]["status"] == "cancelled"


async def test_cancel_stops_a_reply_still_waiting_for_its_first_token(sock, conversation, ollama):
    ollama.enqueue(Behaviour(first_token_delay=20.0))
    await sock.send_json_to(send_frame(conversation))
    await asyncio.sleep(0.3)

    started = time.monotonic()
    await sock.send_json_to({"type": "chat.cancel", "conversation": str(conversation.pk)})
    frames = await until_done(sock)

    assert time.monotonic() - started < 1.0
    assert [f["type"] for f in frames] == ["chat.done"]
    assert frames[0]["message"]["status"] == "cancelled"
    assert frames[0]["message"]["content"] == ""


async def test_cancel_of_a_reply_nobody_runs_gives_it_up(sock, user, conversation, settings):
    # A reply whose process died: streaming in the database, no runner anywhere.
    settings.CANCEL_POLL_SECONDS = 0.05
    turn = await database_sync_to_async(services.message_begin)(
        user=user, conversation_id=conversation.pk, content="hi"
    )
    await subscribe(sock, conversation)

    await sock.send_json_to({"type": "chat.cancel", "conversation": str(conversation.pk)})
    frames = await until_done(sock, timeout=5)

    assert frames[-1]["message"]["id"] == str(turn.assistant_message.pk)
    assert frames[-1]["message"]["status"] == "cancelled"
    assert (await stored(turn.assistant_message.pk)).status == "cancelled"


async def test_cancel_with_nothing_streaming_is_an_error(sock, conversation):
    await sock.send_json_to(
        {"type": "chat.cancel", "conversation": str(conversation.pk), "request_id": "c9"}
    )
    reply = await sock.receive_json_from(timeout=5)
    assert reply == {
        "type": "error",
        "code": "nothing_to_cancel",
        "message": reply["message"],
        "request_id": "c9",
    }


# --- access and bad input ------------------------------------------------------------------


async def test_another_users_conversation_is_not_found(sock, other_conversation, ollama):
    for frame in (
        {"type": "subscribe", "topic": f"conversation:{other_conversation.pk}", "request_id": 1},
        send_frame(other_conversation, request_id=2),
        {"type": "chat.cancel", "conversation": str(other_conversation.pk), "request_id": 3},
    ):
        await sock.send_json_to(frame)
        reply = await sock.receive_json_from(timeout=5)
        assert reply["type"] == "error"
        assert reply["code"] == "not_found"
        assert reply["request_id"] == frame["request_id"]
    assert ollama.requests == []
    assert not await database_sync_to_async(other_conversation.messages.exists)()


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        ({"content": ""}, "invalid"),
        ({"content": 5}, "invalid"),
        ({"content": None}, "invalid"),
        ({"conversation": None}, "invalid"),
        ({"conversation": "nope"}, "not_found"),
    ],
)
async def test_bad_send_is_an_error_with_the_request_id(sock, conversation, ollama, patch, code):
    await sock.send_json_to({**send_frame(conversation, request_id="bad"), **patch})

    reply = await sock.receive_json_from(timeout=5)

    assert reply["type"] == "error"
    assert reply["code"] == code
    assert reply["request_id"] == "bad"
    assert ollama.requests == []


async def test_content_limit_on_the_socket(sock, conversation, ollama, settings):
    settings.CHAT_MAX_CONTENT_CHARS = 10
    await sock.send_json_to(send_frame(conversation, content="x" * 11))
    reply = await sock.receive_json_from(timeout=5)
    assert (reply["type"], reply["code"]) == ("error", "invalid")
    assert "10 characters" in reply["message"]


async def test_reply_completes_and_is_stored_when_the_sender_disconnects(
    token, conversation, ollama
):
    ollama.enqueue(Behaviour(token_interval=0.05))
    communicator = await open_socket(token)
    await communicator.send_json_to(send_frame(conversation))
    first = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    for _ in range(100):
        message = await stored(first["message"])
        if message.status != "streaming":
            break
        await asyncio.sleep(0.05)
    assert (message.status, message.content) == ("complete", REPLY)


async def test_subscribe_mid_stream_lists_the_streaming_reply(sock, sock2, conversation, ollama):
    ollama.enqueue(Behaviour(reply=LONG_REPLY, token_interval=0.02))
    await sock.send_json_to(send_frame(conversation))
    first = await sock.receive_json_from(timeout=5)

    snapshot = await subscribe(sock2, conversation)

    assert snapshot["snapshot"] == {"streaming": [first["message"]]}
    frames = await until_done(sock2)
    assert frames[-1]["message"]["status"] == "complete"
    await until_done(sock)


async def test_deleting_the_conversation_mid_stream_ends_the_senders_stream(
    sock, conversation, ollama
):
    ollama.enqueue(Behaviour(reply=LONG_REPLY, token_interval=0.05))
    await sock.send_json_to(send_frame(conversation))
    await sock.receive_json_from(timeout=5)

    await database_sync_to_async(conversation.delete)()
    frames = await until_done(sock)

    assert frames[-1] == {
        "type": "error",
        "code": "not_found",
        "message": "The conversation was deleted.",
        "request_id": "r1",
    }


async def test_cancel_before_the_provider_answers_at_all(
    sock, sock2, conversation, ollama, settings
):
    # The provider holds back even its response headers (a model loading): the cancel closes
    # the reply's client too (its Cancellation, as for an LLM node), which shuts the socket of
    # the request in flight, so the reply stops at once, well before the provider answers.
    settings.CANCEL_POLL_SECONDS = 0.05
    ollama.enqueue(Behaviour(delay=2.5))
    await subscribe(sock2, conversation)
    await sock.send_json_to(send_frame(conversation))
    await asyncio.sleep(0.2)

    started = time.monotonic()
    await sock.send_json_to({"type": "chat.cancel", "conversation": str(conversation.pk)})
    given_up = await until_done(sock2, timeout=5)
    assert time.monotonic() - started < 2.0
    assert given_up[-1]["message"]["status"] == "cancelled"
    assert given_up[-1]["request_id"] == "r1"  # stored by the reply's own thread

    mine = await until_done(sock, timeout=5)
    assert [f["type"] for f in mine] == ["chat.done"]
    assert mine[0]["request_id"] == "r1"
    assert mine[0]["message"]["status"] == "cancelled"
    assert await sock2.receive_nothing(timeout=0.3)  # the late runner stored nothing more
