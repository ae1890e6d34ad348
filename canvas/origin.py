"""Origin checking for the socket, for browsers only.

Channels' ``AllowedHostsOriginValidator`` refuses every handshake without an ``Origin``
header, which is what every non-browser client sends. Here the same matching (Channels'
``OriginValidator`` against ``ALLOWED_HOSTS``) applies to browser handshakes only; the result
goes into ``scope["origin_allowed"]`` (True, False, or None when there was no Origin) and the
consumer decides: a refused Origin closes with 4403, no Origin requires ``?token=``.
"""

from urllib.parse import urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings


class BrowserOriginValidator(OriginValidator):
    def __init__(self, application):
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed)

    async def __call__(self, scope, receive, send):
        origin = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                try:
                    origin = urlparse(value.decode("latin1"))
                except (UnicodeDecodeError, ValueError):
                    origin = urlparse("invalid://")
        allowed = None if origin is None else self.validate_origin(origin)
        return await self.application(dict(scope, origin_allowed=allowed), receive, send)
