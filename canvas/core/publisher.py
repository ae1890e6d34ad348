"""One long-lived publisher per process: sync code hands group messages to one event loop.

Why not ``async_to_sync(layer.group_send)`` from the calling thread: it spins a new event loop
per call, and channels-redis keeps a connection pool per loop; and ``InMemoryChannelLayer`` is
an ``asyncio.Queue`` that a put from a foreign loop does not wake (0.1-1 s lag measured under
Daphne). So every message goes through one queue drained by one task, in the order
``publish`` was called, on:

- the serving loop, when the process serves sockets (the consumer binds it at connect), so
  the in-memory layer wakes its consumers at once;
- otherwise a daemon thread's loop, started on first use (workers, commands).

Apps publish through ``publish_on_commit(topic, event, data)`` (Zulip's
``send_event_on_commit``): inside a transaction the event leaves when it commits, outside one at
once; names are the constants of ``canvas.core.events``. ``listen`` lets code in this process
watch a topic (``manage.py run_workflow``, tests).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from canvas.core.events import FRAME_EVENTS, group_name
from canvas.core.realtime import (
    event_message,
    events_message,
    frame_message,
    timestamp,
    with_encoded_frame,
)

logger = logging.getLogger(__name__)


# At most this many publish() calls' messages go to a layer's group_send_many at once.
DRAIN_BATCHES = 100


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
        # A layer that publishes several messages in one round trip, in order (the Redis
        # layer of canvas.core.layers); None for the others, which get a group_send each.
        send_many = getattr(layer, "group_send_many", None)
        while True:
            batches = [await queue.get()]
            # What was queued while the last send was awaited goes in one round trip.
            while send_many is not None and len(batches) < DRAIN_BATCHES and not queue.empty():
                batches.append(queue.get_nowait())
            try:
                if send_many is not None:
                    await send_many([(group, m) for group, messages in batches for m in messages])
                else:
                    group, messages = batches[0]
                    for message in messages:
                        await layer.group_send(group, message)
            except Exception:
                # A broken layer must not kill the drain: the database keeps the truth and
                # subscribers backfill from it.
                logger.exception(
                    "group_send to %s failed", ", ".join(dict.fromkeys(g for g, _ in batches))
                )
            finally:
                with self._idle:
                    if queue in self._pending:
                        self._pending[queue] -= len(batches)
                    self._idle.notify_all()


publisher = Publisher()


def publish(group: str, message: dict[str, Any]) -> None:
    """Hand one channel-layer message to the process-wide publisher (no names, no commit:
    apps use ``publish_on_commit``)."""
    publisher.publish(group, message)


# --- the apps' one way to publish ----------------------------------------------------------


class Event(NamedTuple):
    """One event of a topic: its name (``canvas.core.events``), data, and for sequenced
    topics its ``seq``; ``ts`` (ISO 8601) defaults to when it is published."""

    event: str
    data: dict[str, Any]
    seq: int | None = None
    ts: str | None = None
    # A piece of a text stream: its attempt and offset (``canvas.core.realtime.event_message``).
    stream: dict[str, Any] | None = None


# The events of one call travel as one channel-layer message (one Redis PUBLISH, one wake-up
# of each subscribed consumer) per this many.
EVENTS_PER_MESSAGE = 100

Listener = Callable[[dict[str, Any]], None]
_listeners: dict[str, list[Listener]] = {}
_listeners_lock = threading.Lock()


def publish_on_commit(
    topic: str,
    event: str,
    data: dict[str, Any],
    *,
    seq: int | None = None,
    ts: str | None = None,
    stream: dict[str, Any] | None = None,
) -> None:
    """Publish ``event`` of ``topic`` when the current transaction commits (at once outside a
    transaction; never if it rolls back). Chat events (``FRAME_EVENTS``) leave as top-level
    frames ``{"type": event, **data}``, the others in the event envelope."""
    publish_events_on_commit(topic, [Event(event, data, seq, ts, stream)])


Sent = Callable[[list[dict[str, Any]]], None]


def publish_events_on_commit(
    topic: str, events: Iterable[Event], *, sent: Sent | None = None
) -> None:
    """Several events of one topic, in order, as one batch (see ``publish_on_commit``).
    ``sent`` is called with the messages as they were published (each frame encoded), once
    handed to the publisher: workflows keep a run's log for replays with it."""
    now = None
    messages = []
    for event in events:
        if event.event in FRAME_EVENTS:
            messages.append(frame_message(topic=topic, frame={"type": event.event, **event.data}))
            continue
        ts = event.ts
        if ts is None:
            now = now or timestamp(timezone.now())
            ts = now
        messages.append(
            event_message(
                topic=topic,
                event=event.event,
                data=event.data,
                ts=ts,
                seq=event.seq,
                stream=event.stream,
            )
        )
    if not messages:
        return
    if not transaction.get_connection().in_atomic_block:
        # Also the path of async callers, which must not touch the connection.
        _send(topic, messages, sent)
        return
    # robust: what the transaction wrote is committed; a failing publish is logged, never
    # raised into the writer (subscribers backfill from the database by seq).
    transaction.on_commit(lambda: _send(topic, messages, sent), robust=True)


def _send(topic: str, messages: list[dict[str, Any]], sent: Sent | None = None) -> None:
    # Each event's frame is encoded here, once, for every socket subscribed to it in any
    # process (the consumer sends the text as it is); listeners get the messages without it.
    encoded = [with_encoded_frame(message) for message in messages]
    if len(encoded) == 1:
        layer_messages = encoded
    else:
        layer_messages = [
            events_message(topic=topic, events=encoded[i : i + EVENTS_PER_MESSAGE])
            for i in range(0, len(encoded), EVENTS_PER_MESSAGE)
        ]
    publisher.publish_many(group_name(topic), layer_messages)
    if sent is not None:
        sent(encoded)
    if _listeners:
        with _listeners_lock:
            callbacks = list(_listeners.get(topic, ()))
        for callback in callbacks:
            for message in messages:
                try:
                    callback(message)
                except Exception:
                    # An observer's bug must not fail the writer whose events it watches.
                    logger.exception("listener of %s failed", topic)


@contextmanager
def listen(topic: str, callback: Listener) -> Iterator[None]:
    """Call ``callback`` in this process with every message published to ``topic`` (an
    ``event_message`` or ``frame_message`` dict), on the publishing thread: keep it quick.

    For in-process observers (``manage.py run_workflow``, tests); sockets use the group.
    """
    with _listeners_lock:
        _listeners.setdefault(topic, []).append(callback)
    try:
        yield
    finally:
        with _listeners_lock:
            _listeners[topic].remove(callback)
            if not _listeners[topic]:
                del _listeners[topic]
