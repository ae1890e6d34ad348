"""The socket's session and user middleware: Channels' ``AuthMiddlewareStack`` without its
per-frame send wrapper.

Channels' ``SessionMiddleware`` hands the application a wrapped ``send`` that, on every
message, reads the session's ``modified`` flag and ``is_empty()`` to decide whether to save
it, which it only ever does for ``http.response.start``. A socket never sends that message, so
for a socket every frame paid for a check that cannot succeed (~7 % of the serving loop's
samples while it relayed 10,000 token frames, bench/relay_cpu.py). Here a socket gets the
session in its scope as before and the server's ``send`` itself. As with Channels' stack, a
consumer that changes the session saves it itself (Channels' docs, "Authentication").
"""

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware


class SocketSessionMiddleware(SessionMiddleware):
    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def SocketAuthMiddlewareStack(inner):  # noqa: N802 - named as Channels' AuthMiddlewareStack
    return CookieMiddleware(SocketSessionMiddleware(AuthMiddleware(inner)))
