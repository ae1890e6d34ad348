"""canvas/socket_sessions.py: a socket gets its session in the scope and the server's own send;
HTTP keeps Channels' wrapped send (it saves the session on ``http.response.start``)."""

import pytest

from canvas.socket_sessions import SocketSessionMiddleware

pytestmark = pytest.mark.django_db


async def _seen(scope_type):
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope=scope, send=send)

    async def send(message):
        pass

    scope = {"type": scope_type, "cookies": {}, "headers": [], "path": "/ws/"}
    await SocketSessionMiddleware(inner)(scope, None, send)
    return seen, send


async def test_a_socket_gets_the_session_and_the_servers_send():
    seen, send = await _seen("websocket")
    assert seen["send"] is send
    assert seen["scope"]["session"].is_empty()  # resolved: no cookie, an empty session


async def test_http_keeps_the_session_saving_send():
    seen, send = await _seen("http")
    assert seen["send"] is not send
    assert "session" in seen["scope"]
