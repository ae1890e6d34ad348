"""One long-lived publisher per process: sync code hands group messages to one event loop.

Why not ``async_to_sync(layer.group_send)`` from the calling thread: it spins a new event loop
per call, and channels-redis keeps a connection pool per loop; and ``InMemoryChannelLayer`` is
an ``asyncio.Queue`` that a put from a foreign loop does not wake (0.1-1 s lag measured under
Daphne). So every message goes through one queue drained by one task, in the order
``publish`` was called, on:

- the serving loop, when the process serves sockets (the consumer binds it at connect), so
  the in-memory layer wakes its consumers at once;
- otherwise a daemon thread's loop, started on first use (workers, commands).

Callers inside a transaction should publish from ``transaction.on_commit``.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)


class Publisher:
    def __init__(self, alias: str | None = None):
        self.alias = alias or settings.EVENTS_CHANNEL_LAYER
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        # Messages handed to publish() and not yet given to the layer, per drain queue.
        self._pending: dict[asyncio.Queue, int] = {}
        self._idle = threading.Condition(self._lock)
        self._flush_at_exit = False

    # --- binding ---------------------------------------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drain on ``loop`` from now on (the serving loop). Call from that loop."""
        with self._lock:
            if self._loop is loop:
                return
            self._start_on(loop)

    def _start_on(self, loop: asyncio.AbstractEventLoop) -> None:
        # Precondition: holding self._lock. Messages queued on a previous loop that is gone
        # (a closed test loop) are dropped with it; a live previous loop keeps draining.
        if self._loop is not None and self._loop.is_closed():
            self._pending.pop(self._queue, None)
        queue: asyncio.Queue = asyncio.Queue()
        self._loop, self._queue = loop, queue
        self._pending[queue] = 0
        loop.call_soon_threadsafe(lambda: loop.create_task(self._drain(queue)))

    def _ensure_loop(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue]:
        # Precondition: holding self._lock.
        if self._loop is None or self._loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name=f"publisher-{self.alias}", daemon=True
            )
            thread.start()
            self._start_on(loop)
            # A daemon thread dies with the process: a command that publishes and exits
            # (run_workflow, an admin action in a shell) would lose its last messages.
            if not self._flush_at_exit:
                self._flush_at_exit = True
                atexit.register(self.flush, 2.0)
        return self._loop, self._queue

    # --- publishing ------------------------------------------------------------------------

    def publish(self, group: str, message: dict[str, Any]) -> None:
        """Queue ``message`` for ``group``; returns at once. Thread-safe; order is kept."""
        self.publish_many(group, [message])

    def publish_many(self, group: str, messages: list[dict[str, Any]]) -> None:
        """Queue ``messages`` for ``group`` in order, waking the loop once (a flush of the
        engine commits several events at a time)."""
        if not messages:
            return
        with self._lock:
            loop, queue = self._ensure_loop()
            self._pending[queue] += 1
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (group, messages))
        except RuntimeError:  # the loop closed between the check and the call
            with self._lock:
                self._pending[queue] -= 1
            logger.warning("publisher loop closed; dropped messages for %s", group)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every message published so far was handed to the layer."""
        with self._idle:
            return self._idle.wait_for(lambda: not any(self._pending.values()), timeout=timeout)

    async def _drain(self, queue: asyncio.Queue) -> None:
        layer = get_channel_layer(self.alias)
        while True:
            group, messages = await queue.get()
            try:
                for message in messages:
                    await layer.group_send(group, message)
            except Exception:
                # A broken layer must not kill the drain: the database keeps the truth and
                # subscribers backfill from it.
                logger.exception("group_send to %s failed", group)
            finally:
                with self._idle:
                    if queue in self._pending:
                        self._pending[queue] -= 1
                    self._idle.notify_all()


publisher = Publisher()


def publish(group: str, message: dict[str, Any]) -> None:
    """Publish through the process-wide publisher."""
    publisher.publish(group, message)


def publish_many(group: str, messages: list[dict[str, Any]]) -> None:
    """Publish several messages for one group through the process-wide publisher."""
    publisher.publish_many(group, messages)
