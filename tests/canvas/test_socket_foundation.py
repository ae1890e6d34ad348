"""The /ws/ route as wired in canvas.asgi: auth close code, ping, bad input."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token  # noqa: F401 - ensures app loaded

from canvas.asgi import application
from canvas.consumers import CanvasConsumer

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://testserver")]


async def test_anonymous_socket_is_accepted_then_closed_with_4401():
    communicator = WebsocketCommunicator(application, "/ws/", headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    output = await communicator.receive_output(timeout=2)
    assert output == {"type": "websocket.close", "code": 4401}
    await communicator.disconnect()


async def test_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


@pytest.fixture
async def socket(django_user_model):
    user = await database_sync_to_async(django_user_model.objects.create_user)(
        username="wsuser", password="pw-123456"
    )
    communicator = WebsocketCommunicator(CanvasConsumer.as_asgi(), "/ws/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    yield communicator
    await communicator.disconnect()


async def test_ping_answers_pong(socket):
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=2) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"type": "nope"}', "unknown_type"),
    ],
)
async def test_bad_input_answers_an_error_and_keeps_the_socket_open(socket, frame, code):
    await socket.send_to(text_data=frame)
    reply = await socket.receive_json_from(timeout=2)
    assert reply["type"] == "error"
    assert reply["code"] == code

    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=2) == {"type": "pong"}
