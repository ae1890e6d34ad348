"""A process-wide cache of replays: the stored events every subscriber of a run is sent.

A sequenced topic's persisted log only grows: an event, once committed with its ``seq``, never
changes, and the committed log is gapless (one writer per object allocates ``seq`` and commits
in order; docs/realtime.md). So the events a ``subscribe`` replays are made into group messages
and encoded once per process, and later subscribes to the same object (many viewers of one
run, a reconnect storm) slice the cached list, reading from the database only the events stored
since. The log comes from two places: a writer in this process adds its events as they commit
(``extend``: they were encoded for the live frames already, so a run executed here is replayed
without reading its events back), and a subscribe adds what it read (``put``). Once the final
event is stored nothing more is written, and a finished run's entry also keeps the snapshot
(its node statuses are final too).

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
from operator import attrgetter
from typing import Any

from cachetools import LRUCache
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


def _size(messages) -> int:
    return sum(len(message.get("encoded") or "") for message in messages)


class ReplayCache:
    """Logs by object id, least recently used out first, at most ``limit`` bytes
    of encoded frames (``settings.REALTIME_REPLAY_CACHE_BYTES`` when None). Thread-safe.

    The entries are a ``cachetools.LRUCache`` weighing each log by its frames' length; it is
    made afresh, empty, when the bound read from the settings has changed (tests change it)."""

    def __init__(self, limit: int | None = None):
        self._limit = limit
        self._entries: LRUCache | None = None
        # Objects whose log outgrew the bound: read from the database as if uncached (not
        # from their first event on every subscribe, only to be dropped again).
        self._oversized = LRUCache(maxsize=OVERSIZED_KEPT)
        self._lock = threading.Lock()
        # Whether a subscribe read this cache yet (``extend``).
        self._read = False

    @property
    def limit(self) -> int:
        return settings.REALTIME_REPLAY_CACHE_BYTES if self._limit is None else self._limit

    @property
    def size(self) -> int:
        return 0 if self._entries is None else self._entries.currsize

    def __len__(self) -> int:
        return 0 if self._entries is None else len(self._entries)

    def get(self, object_id: uuid.UUID) -> CachedLog | None:
        self._read = True
        with self._lock:
            return None if self._entries is None else self._entries.get(object_id)

    def put(
        self,
        object_id: uuid.UUID,
        messages: tuple[dict[str, Any], ...],
        *,
        snapshot: dict[str, Any] | None = None,
    ) -> CachedLog:
        """Keep a log (``messages`` with ``encoded``; precondition: seqs 1..N as stored) if
        it fits the bound; answers the entry kept. With ``snapshot`` the log is final
        (precondition: its last message is the final event, and the snapshot was read after
        the object's terminal status). A longer log kept meanwhile (``extend``, by the writer
        as it committed) stays, and is the answer."""
        entry = CachedLog(
            messages=tuple(messages),
            final=snapshot is not None,
            snapshot=snapshot,
            size=_size(messages),
        )
        limit = self.limit
        if limit <= 0:
            return entry
        with self._lock:
            entries = self._entries_bounded_by(limit)
            kept = entries.get(object_id)
            if kept is not None and kept.last_seq > entry.last_seq:
                return kept
            self._keep(entries, object_id, entry)
        return entry

    def extend(self, object_id: uuid.UUID, messages: list[dict[str, Any]]) -> None:
        """Add messages just committed by the object's writer in this process (with
        ``encoded``, in ``seq`` order) to its kept log: those that continue it, or that
        start it at ``seq`` 1. Messages that a subscribe read from the database first are
        skipped; after a gap (events written by another process) nothing is added, and
        subscribes read the rest from the database. Nothing is kept until this cache was
        read once (``get``): a process that serves no subscribes (a worker) keeps nothing."""
        if not self._read or not messages:
            return  # (before the setting's lookup: a worker publishes on every flush)
        limit = self.limit
        if limit <= 0:
            return
        with self._lock:
            if object_id in self._oversized:
                return
            entries = self._entries_bounded_by(limit)
            kept = entries.get(object_id)
            have = kept.last_seq if kept is not None else 0
            new = [message for message in messages if message["seq"] > have]
            if not new or any(m["seq"] != have + i for i, m in enumerate(new, 1)):
                return
            prefix = kept.messages if kept is not None else ()
            size = (kept.size if kept is not None else 0) + _size(new)
            log = CachedLog(messages=prefix + tuple(new), final=False, snapshot=None, size=size)
            self._keep(entries, object_id, log)

    def _entries_bounded_by(self, limit: int) -> LRUCache:
        # Precondition: holding self._lock.
        if self._entries is None or self._entries.maxsize != limit:
            self._entries = LRUCache(maxsize=limit, getsizeof=attrgetter("size"))
        return self._entries

    def _keep(self, entries: LRUCache, object_id: uuid.UUID, entry: CachedLog) -> None:
        # Precondition: holding self._lock.
        try:
            entries[object_id] = entry  # least recently used out until it fits
        except ValueError:  # over the whole bound: nothing is evicted for it
            entries.pop(object_id, None)
            self._oversized[object_id] = None

    def oversized(self, object_id: uuid.UUID) -> bool:
        """True when the object's log was once over the bound (it only grows)."""
        return object_id in self._oversized

    def clear(self) -> None:
        with self._lock:
            self._entries = None
            self._oversized.clear()
            self._read = False
