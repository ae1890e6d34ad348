"""The tail check: a stored event reaches its subscribers even when nobody published it.

A process that commits events and dies before publishing them (SIGKILL, OOM, a lost Redis
message) leaves subscribers waiting, and a missing *last* event shows no gap. So every serving
loop runs one ``TailWatcher``: every ``REALTIME_TAIL_CHECK_SECONDS`` it reads the highest stored
``seq`` of every unfinished sequenced subscription the process holds, one query per topic kind
for all of them (``Topic.last_seqs``), and tells each socket still behind a ``seq`` that was
already stored at the previous check to catch up from the database. Waiting one interval leaves
the live message time to arrive (a backfill costs a query per socket); an event therefore
reaches every socket at most about two intervals plus a query after its commit.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from typing import TYPE_CHECKING, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

if TYPE_CHECKING:
    from canvas.core.realtime import Topic

logger = logging.getLogger(__name__)


class Subscriber(Protocol):
    def last_seq_of(self, name: str) -> int | None:
        """The last ``seq`` sent on topic ``name``; None when no longer subscribed."""

    async def catch_up(self, name: str) -> None:
        """Send what the database holds after the last ``seq`` sent on topic ``name``."""


Key = tuple[str, uuid.UUID]


class TailWatcher:
    """The tail check of one serving loop (see the module docstring)."""

    def __init__(self) -> None:
        self._topics: dict[str, Topic] = {}
        self._subscribers: dict[Key, weakref.WeakSet] = {}
        # Tails read at the previous check: a socket behind one of them is late.
        self._previous: dict[Key, int] = {}
        self._task: asyncio.Task | None = None
        self._catching_up: set[asyncio.Task] = set()

    def watch(self, topic: Topic, object_id: uuid.UUID, subscriber: Subscriber) -> None:
        self._topics[topic.kind] = topic
        self._subscribers.setdefault((topic.kind, object_id), weakref.WeakSet()).add(subscriber)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unwatch(self, topic: Topic, object_id: uuid.UUID, subscriber: Subscriber) -> None:
        key = (topic.kind, object_id)
        subscribers = self._subscribers.get(key)
        if subscribers is None:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self._subscribers[key]
            self._previous.pop(key, None)
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while self._subscribers:
            await asyncio.sleep(settings.REALTIME_TAIL_CHECK_SECONDS)
            try:
                await self.check()
            except Exception:
                # A database outage must not end the checks; the next interval tries again.
                logger.warning("tail check failed", exc_info=True)

    async def check(self) -> None:
        """One check: read every watched tail, wake the sockets that are late."""
        by_kind: dict[str, list[uuid.UUID]] = {}
        for kind, object_id in self._subscribers:
            by_kind.setdefault(kind, []).append(object_id)
        if not by_kind:
            return
        tails = await database_sync_to_async(self._read)(by_kind)
        for key, subscribers in list(self._subscribers.items()):
            previous = self._previous.get(key, 0)
            self._previous[key] = tails.get(key, 0)
            if not previous:
                continue
            name = f"{key[0]}:{key[1]}"
            for subscriber in list(subscribers):
                sent = subscriber.last_seq_of(name)
                if sent is not None and sent < previous:
                    task = asyncio.get_running_loop().create_task(subscriber.catch_up(name))
                    self._catching_up.add(task)
                    task.add_done_callback(self._catching_up.discard)

    def _read(self, by_kind: dict[str, list[uuid.UUID]]) -> dict[Key, int]:
        tails: dict[Key, int] = {}
        for kind, object_ids in by_kind.items():
            for object_id, seq in self._topics[kind].last_seqs(object_ids).items():
                tails[(kind, object_id)] = seq
        return tails


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TailWatcher] = (
    weakref.WeakKeyDictionary()
)


def tail_watcher() -> TailWatcher:
    """The running loop's watcher (one per serving loop, shared by its sockets)."""
    loop = asyncio.get_running_loop()
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = TailWatcher()
    return watcher
