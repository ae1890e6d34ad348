"""The socket's chat.send is counted by the `chat` throttle, in the same per-user bucket as REST
sends: switching transport neither dodges nor resets the limit. Over the rate the socket answers
`error` `throttled` with `retry_after`, stays open, starts no reply and stores nothing.

WebsocketCommunicator against canvas.asgi.application, the fake Ollama on loopback (the
streaming thread writes through its own connection, so these tests commit).
"""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from canvas.asgi import application
from canvas.core.throttle_rates import parse_rates
from chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chat_rate(settings):
    # The pytest-django `settings` fixture: override_settings for this test only.
    settings.THROTTLE_RATES = parse_rates("chat=2/min")


@pytest.fixture
async def sock(user):
    token = await database_sync_to_async(lambda: Token.objects.get_or_create(user=user)[0].key)()
    communicator = WebsocketCommunicator(application, f"/ws/?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    yield communicator
    await communicator.disconnect()


def send_frame(conversation, request_id):
    return {
        "type": "chat.send",
        "conversation": str(conversation.pk),
        "content": "Why is the sky blue?",
        "request_id": request_id,
    }


async def socket_send(sock, conversation, request_id) -> dict:
    """Send; answer the last frame (a chat.done, or an error)."""
    await sock.send_json_to(send_frame(conversation, request_id))
    while True:
        frame = await sock.receive_json_from(timeout=10)
        if frame["type"] in {"chat.done", "error"}:
            return frame


def rest_send(api_client, conversation):
    return database_sync_to_async(api_client.post)(
        f"/api/conversations/{conversation.pk}/messages/", {"content": "hi"}, format="json"
    )


message_count = database_sync_to_async(lambda: Message.objects.count())


def assert_throttled_frame(frame, request_id):
    assert frame["type"] == "error", frame
    assert frame["code"] == "throttled"
    assert frame["request_id"] == request_id
    assert isinstance(frame["retry_after"], int)
    assert 0 < frame["retry_after"] <= 60
    assert "throttled" in frame["message"]


async def assert_still_open_and_quiet(sock):
    # No reply started (no chat.token, no chat.done) and the socket still answers.
    assert await sock.receive_nothing(timeout=0.5)
    await sock.send_json_to({"type": "ping"})
    assert await sock.receive_json_from(timeout=5) == {"type": "pong"}


async def test_socket_sends_are_counted_and_refused_over_the_rate(
    chat_rate, sock, conversation, ollama
):
    for request_id in ("r1", "r2"):
        done = await socket_send(sock, conversation, request_id)
        assert done["type"] == "chat.done", done
    stored = await message_count()
    assert stored == 4

    refused = await socket_send(sock, conversation, "r3")

    assert_throttled_frame(refused, "r3")
    await assert_still_open_and_quiet(sock)
    assert await message_count() == stored  # nothing written


async def test_rest_and_socket_sends_share_one_bucket(
    chat_rate, sock, conversation, ollama, api_client
):
    # Given one send over REST and one over the socket (the rate is 2 a minute)
    assert (await rest_send(api_client, conversation)).status_code == 201
    done = await socket_send(sock, conversation, "r1")
    assert done["type"] == "chat.done", done
    stored = await message_count()

    # then neither transport gets a third one through
    refused = await socket_send(sock, conversation, "r2")
    assert_throttled_frame(refused, "r2")
    response = await rest_send(api_client, conversation)
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60

    await assert_still_open_and_quiet(sock)
    assert await message_count() == stored


async def test_rest_sends_use_up_the_socket_s_allowance(
    chat_rate, sock, conversation, ollama, api_client
):
    for _ in range(2):
        assert (await rest_send(api_client, conversation)).status_code == 201

    assert_throttled_frame(await socket_send(sock, conversation, "r1"), "r1")
    assert await message_count() == 4


async def test_another_user_has_their_own_bucket(
    chat_rate, sock, conversation, other_conversation, other_user, ollama
):
    for request_id in ("r1", "r2"):
        await socket_send(sock, conversation, request_id)
    assert_throttled_frame(await socket_send(sock, conversation, "r3"), "r3")

    token = await database_sync_to_async(lambda: Token.objects.create(user=other_user).key)()
    other = WebsocketCommunicator(application, f"/ws/?token={token}")
    assert (await other.connect())[0]
    try:
        done = await socket_send(other, other_conversation, "o1")
        assert done["type"] == "chat.done", done
    finally:
        await other.disconnect()
