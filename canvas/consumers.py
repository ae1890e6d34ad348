"""The one WebSocket consumer at /ws/.

Thin by design: it authenticates, parses and answers. Topic routing to the apps'
``realtime.py`` handlers arrives with the realtime issue; today it answers ``ping``.
"""

import json

from channels.generic.websocket import AsyncJsonWebsocketConsumer

# Close codes of the realtime protocol (docs/realtime.md).
CLOSE_UNAUTHENTICATED = 4401


class CanvasConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        # Accept first, then close with an application code: closing before accepting
        # shows the client a bare HTTP 403 with no reason.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def receive(self, text_data=None, bytes_data=None):
        # Overridden so bad JSON is an error message, not a 1011 close (decode_json raises).
        try:
            content = json.loads(text_data or "")
        except (TypeError, ValueError):
            await self.send_error("invalid_json", "Messages must be JSON objects.")
            return
        if not isinstance(content, dict):
            await self.send_error("invalid_message", "Messages must be JSON objects.")
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})
            return
        await self.send_error("unknown_type", f"Unknown message type {content.get('type')!r}.")

    async def send_error(self, code: str, message: str, request_id=None):
        await self.send_json(
            {"type": "error", "code": code, "message": message, "request_id": request_id}
        )
