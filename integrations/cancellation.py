"""The one cancel path of the work a process runs: workflow executions and chat replies.

In the process that runs the work, a ``Cancellation`` is a flag that bites: whoever opens a
stream registers how to shut it (``on_cancel(stream.cancel)``), because a blocked socket read
does not notice a flag. LLM and HTTP nodes get one through their ``NodeContext``; an execution's
coordinator holds one (``workflows/engine.py``), and so does each chat reply (``chat/replies``).
Thread-safe: the streaming thread registers, any thread cancels.

Across processes, a cancel is a flag on the work's row (``Execution.cancel_requested``,
``Message.cancel_requested``), set by whichever process handled the request. One
``CancelWatcher`` per process (``watcher``) maps those rows to the ``Cancellation`` of the work
this process runs:

- ``watcher.watch(flags, key, cancellation)`` while the work runs, ``unwatch(...)`` when it
  ends;
- ``watcher.cancel(flags, key)``: a cancel handled in this process acts at once;
- one thread polls, every ``CANCEL_POLL_SECONDS``, the rows of the work that has run for at
  least that long (one query per kind; work that ends sooner costs no query), and cancels the
  work whose flag is set or whose row was deleted. So a cancel sent to another process acts
  within two intervals (0.5 s at the default 0.25 s);
- the same thread calls each kind's ``heartbeat`` every ``WORKFLOW_HEARTBEAT_INTERVAL`` (chat
  replies write ``heartbeat_at`` there; an execution's heartbeat is its owner's fenced flush);
- idle, the thread waits on a condition and holds no database connection.

A kind of work is a ``CancelFlags`` subclass saying how to read its flags and how to heartbeat
(``workflows.lease.RunFlags``, ``chat.replies.ReplyFlags``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)


class Cancellation:
    def __init__(self) -> None:
        self.event = threading.Event()
        self._callbacks: list[Callable[[], Any]] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` (from the cancelling thread) on cancel; at once if cancelled."""
        with self._lock:
            if not self.event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def cancel(self) -> None:
        with self._lock:
            if self.event.is_set():
                return
            self.event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a cancel callback failed")


class CancelFlags:
    """Where one kind of work keeps its cancel flags; the watcher calls these in its thread."""

    def read(self, keys: list[Any]) -> dict[Any, bool]:
        """The cancel flag of each key whose row exists (a missing key: the row was deleted)."""
        raise NotImplementedError

    def heartbeat(self, keys: list[Any]) -> None:
        """Mark the work alive; called every ``WORKFLOW_HEARTBEAT_INTERVAL`` while it runs."""


class _Watched:
    def __init__(self, cancellation: Cancellation) -> None:
        self.cancellation = cancellation
        self.since = time.monotonic()
        # The row was read once, so its absence later means it was deleted (not that the
        # transaction that wrote it is not visible to the watcher's connection yet).
        self.seen = False


class CancelWatcher:
    """The work this process runs, by (kind, key), and the thread that applies cancels and
    heartbeats from the database to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._watched: dict[tuple[CancelFlags, Hashable], _Watched] = {}
        self._thread: threading.Thread | None = None
        self._last_beat: dict[CancelFlags, float] = {}

    def watch(self, flags: CancelFlags, key: Hashable, cancellation: Cancellation) -> None:
        """Cancel ``cancellation`` when ``key``'s row asks to; ``unwatch`` when the work ends."""
        with self._lock:
            self._watched[flags, key] = _Watched(cancellation)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="cancel-watcher", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def unwatch(self, flags: CancelFlags, key: Hashable, cancellation: Cancellation) -> None:
        with self._lock:
            watched = self._watched.get((flags, key))
            # Only its own entry: a newer runner of the same key (a takeover) keeps its own.
            if watched is not None and watched.cancellation is cancellation:
                del self._watched[flags, key]

    def cancel(self, flags: CancelFlags, key: Hashable) -> bool:
        """Cancel the work if this process runs it; True when it did."""
        with self._lock:
            watched = self._watched.get((flags, key))
        if watched is None:
            return False
        watched.cancellation.cancel()
        return True

    def watching(self) -> list[tuple[CancelFlags, Hashable]]:
        with self._lock:
            return list(self._watched)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._watched:
                    connection.close()  # idle: hold no database connection
                    self._wake.wait()
            time.sleep(settings.CANCEL_POLL_SECONDS)
            for flags, by_key in self._due().items():
                try:
                    close_old_connections()  # a connection broken by an earlier hiccup
                    self._apply(flags, by_key)
                except Exception:  # a database hiccup must not end the watcher
                    logger.exception("the cancel watcher could not read %r", flags)

    def _due(self) -> dict[CancelFlags, dict[Hashable, _Watched]]:
        """The work that has run for one interval at least, by kind."""
        oldest = time.monotonic() - settings.CANCEL_POLL_SECONDS
        due: dict[CancelFlags, dict[Hashable, _Watched]] = {}
        with self._lock:
            for (flags, key), watched in self._watched.items():
                if watched.since <= oldest:
                    due.setdefault(flags, {})[key] = watched
        return due

    def _apply(self, flags: CancelFlags, by_key: dict[Hashable, _Watched]) -> None:
        stored = flags.read(list(by_key))
        for key, watched in by_key.items():
            if key in stored:
                watched.seen = True
            if stored.get(key) or (watched.seen and key not in stored):
                watched.cancellation.cancel()  # asked to stop, or deleted
        now = time.monotonic()
        if now - self._last_beat.get(flags, -math.inf) >= settings.WORKFLOW_HEARTBEAT_INTERVAL:
            self._last_beat[flags] = now
            flags.heartbeat(list(by_key))


# One per process: the engine's runs and the chat replies this process streams.
watcher = CancelWatcher()
