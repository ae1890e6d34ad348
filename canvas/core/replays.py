"""A process-wide cache of replays: the stored events every subscriber of a run is sent.

A sequenced topic's persisted log only grows: an event, once committed with its ``seq``, never
changes, and the committed log is gapless (one writer per object allocates ``seq`` and commits
in order; docs/realtime.md). So the events a ``subscribe`` replays are read from the database,
made into group messages and encoded once per process, and later subscribes to the same object
(many viewers of one run, a reconnect storm) slice the cached list, reading from the database
only the events stored since. Once the final event is stored nothing more is written, and a
finished run's entry also keeps the snapshot (its node statuses are final too).

What is kept per object: its messages ``seq`` 1..N, each with its frame's ``encoded`` text for
subscribers of that topic (``realtime.with_encoded_frame``), whether the log is final, and for
a final log the topic's snapshot. Authorization is not cached: the topic still checks on every
subscribe that the object is the user's before it reads this cache.

The cache is bounded by ``REALTIME_REPLAY_CACHE_BYTES`` (the encoded frames' total length;
the entries take about six times that in memory with their decoded messages, measured as the
served process's RSS once the cache was full), least recently used out first; a log larger
than the bound is not kept, and 0 turns the cache off.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import OrderedDict
from typing import Any

from django.conf import settings

# How many objects over the bound are remembered as such.
OVERSIZED_KEPT = 1024


@dataclasses.dataclass(frozen=True)
class CachedLog:
    """An object's stored log from its start, ``messages[i]`` having ``seq`` i + 1.

    ``final``: the last message is the final event and ``snapshot`` the object's final
    snapshot. Shared by every subscriber: read-only (the consumer only reads replayed
    messages)."""

    messages: tuple[dict[str, Any], ...]
    final: bool
    snapshot: dict[str, Any] | None
    size: int

    @property
    def last_seq(self) -> int:
        return len(self.messages)

    def after(self, seq: int) -> list[dict[str, Any]]:
        """The messages with ``seq`` > ``seq``, oldest first."""
        return list(self.messages[seq:])


class ReplayCache:
    """Logs by object id, least recently used out first, at most ``limit`` bytes
    of encoded frames (``settings.REALTIME_REPLAY_CACHE_BYTES`` when None). Thread-safe."""

    def __init__(self, limit: int | None = None):
        self._limit = limit
        self._entries: OrderedDict[uuid.UUID, CachedLog] = OrderedDict()
        self._size = 0
        # Objects whose log outgrew the bound: read from the database as if uncached (not
        # from their first event on every subscribe, only to be dropped again).
        self._oversized: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return settings.REALTIME_REPLAY_CACHE_BYTES if self._limit is None else self._limit

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, object_id: uuid.UUID) -> CachedLog | None:
        with self._lock:
            entry = self._entries.get(object_id)
            if entry is not None:
                self._entries.move_to_end(object_id)
            return entry

    def put(
        self,
        object_id: uuid.UUID,
        messages: tuple[dict[str, Any], ...],
        *,
        snapshot: dict[str, Any] | None = None,
    ) -> CachedLog:
        """Keep a log (``messages`` with ``encoded``; precondition: seqs 1..N as stored) if
        it fits the bound; answers the entry either way. With ``snapshot`` the log is final
        (precondition: its last message is the final event, and the snapshot was read after
        the object's terminal status)."""
        size = sum(len(message.get("encoded") or "") for message in messages)
        entry = CachedLog(
            messages=tuple(messages), final=snapshot is not None, snapshot=snapshot, size=size
        )
        limit = self.limit
        if limit <= 0:
            return entry
        with self._lock:
            if (previous := self._entries.pop(object_id, None)) is not None:
                self._size -= previous.size
            if size > limit:
                self._oversized[object_id] = None
                if len(self._oversized) > OVERSIZED_KEPT:
                    self._oversized.popitem(last=False)
                return entry
            self._entries[object_id] = entry
            self._size += size
            while self._size > limit:
                _, evicted = self._entries.popitem(last=False)
                self._size -= evicted.size
        return entry

    def oversized(self, object_id: uuid.UUID) -> bool:
        """True when the object's log was once over the bound (it only grows)."""
        return object_id in self._oversized

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._oversized.clear()
            self._size = 0
