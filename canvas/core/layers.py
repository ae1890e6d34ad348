"""The in-memory channel layer of the ``events`` alias (one process, no Redis).

Channels' ``InMemoryChannelLayer.group_send`` starts a task per member channel and each task
``deepcopy``s the message: a 100-event batch to 500 sockets is 500 copies of the batch (9.8 s
of one process's CPU measured on a loaded machine, docs/benchmarks.md). This layer copies a
group message once and puts that one copy in every member's queue.

Safe because the only receivers of this alias's group messages, ``canvas.consumers``'s
consumers, treat them as read-only (see the comment above its "relaying group messages"
handlers); the one copy still keeps the publisher's dicts apart from what the sockets read.
A message sent to one channel (``send``) is copied as before.

Channels' layer also walks every channel's queue and every group for expired messages on each
``receive`` and ``group_send``: 500 sockets receiving one group message walked 500 × 500
queues. Here that walk runs at most once per ``clean_interval`` (1 s); a message expires after
``expiry`` (60 s), so an expired message and its channel's memberships go at most that much
later.
"""

from __future__ import annotations

import asyncio
import time
from copy import deepcopy
from typing import Any

from channels.layers import InMemoryChannelLayer


class SharedInMemoryChannelLayer(InMemoryChannelLayer):
    clean_interval = 1.0
    _cleaned_at = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at < self.clean_interval:
            return
        self._cleaned_at = now
        super()._clean_expired()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if not isinstance(message, dict) or "__asgi_channel__" in message:
            raise TypeError("A group message is a dict without '__asgi_channel__'.")
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if not members:
            return
        shared = deepcopy(message)
        expires = time.time() + self.expiry
        # Member names were validated by group_add. In member order, as the base class's tasks
        # run; a full channel misses the message, as there (ChannelFull is not raised).
        for channel in list(members):
            queue = self.channels.get(channel)
            if queue is None:
                queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
            if not queue.full():
                queue.put_nowait((expires, shared))
