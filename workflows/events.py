"""The one module that persists and publishes execution events.

Every execution event except ``node.token`` is a row of ``ExecutionEvent`` with a gapless
``seq`` from 1, written in the same transaction as the state change it reports, and published
to the group ``execution.<uuid>`` only once that transaction commits. ``node.token`` is
published and never stored.

One writer per execution allocates ``seq``: while a run is queued (no engine owns it yet) the
services call ``event_record``, which takes the next number inside their write transaction;
once an engine has claimed the run, its ``EventLog`` is the only writer. Publishing goes
through the process-wide publisher (``canvas.core.publisher``), which hands messages to one
long-lived loop in the order they were given, so ``on_commit`` callbacks issued by one writer
thread reach subscribers in ``seq`` order.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from canvas.core.publisher import publish_many
from canvas.core.realtime import event_message, events_message
from workflows.models import ExecutionEvent
from workflows.rowwriter import DATETIME, JSON, PLAIN, UUID, insert_rows

EVENT_COLUMNS = (
    ("execution_id", UUID),
    ("seq", PLAIN),
    ("event", PLAIN),
    ("data", JSON),
    ("ts", DATETIME),
)

logger = logging.getLogger(__name__)
Listener = Callable[[dict[str, Any]], None]
_listeners: dict[str, list[Listener]] = {}
_listeners_lock = threading.Lock()


def execution_group(execution_id: uuid.UUID | str) -> str:
    return f"execution.{execution_id}"


def execution_topic(execution_id: uuid.UUID | str) -> str:
    return f"execution:{execution_id}"


@contextmanager
def events_listen(*, execution_id: uuid.UUID | str, callback: Listener) -> Iterator[None]:
    """Call ``callback`` in this process with every message published for the execution.

    For in-process observers (``manage.py run_workflow``, tests); sockets use the group.
    The callback runs on the publishing thread and must be quick.
    """
    key = str(execution_id)
    with _listeners_lock:
        _listeners.setdefault(key, []).append(callback)
    try:
        yield
    finally:
        with _listeners_lock:
            _listeners[key].remove(callback)
            if not _listeners[key]:
                del _listeners[key]


# Events of one flush travel as one channel-layer message (a Redis PUBLISH, a consumer
# wake-up) per this many.
EVENTS_PER_MESSAGE = 100


def _publish(execution_id, messages: list[dict[str, Any]]) -> None:
    if len(messages) == 1:
        layer_messages = messages
    else:
        topic = execution_topic(execution_id)
        layer_messages = [
            events_message(topic=topic, events=messages[i : i + EVENTS_PER_MESSAGE])
            for i in range(0, len(messages), EVENTS_PER_MESSAGE)
        ]
    publish_many(execution_group(execution_id), layer_messages)
    if _listeners:
        with _listeners_lock:
            callbacks = list(_listeners.get(str(execution_id), ()))
        for callback in callbacks:
            for message in messages:
                try:
                    callback(message)
                except Exception:
                    # An observer's bug must not fail the run whose events it watches.
                    logger.exception("execution event listener failed")


def event_as_message(row: ExecutionEvent) -> dict[str, Any]:
    """The group message of a persisted event (what subscribers receive live)."""
    return event_message(
        topic=execution_topic(row.execution_id),
        event=row.event,
        data=row.data,
        ts=row.ts.isoformat(),
        seq=row.seq,
    )


def event_as_dict(row: ExecutionEvent) -> dict[str, Any]:
    """The REST shape of a persisted event."""
    return {"seq": row.seq, "event": row.event, "data": row.data, "ts": row.ts}


def _publish_rows_on_commit(execution_id, rows: list[ExecutionEvent]) -> None:
    messages = [event_as_message(row) for row in rows]

    def send():
        _publish(execution_id, messages)

    # robust: the rows are committed; a failing publish is logged, never raised into the
    # engine (subscribers backfill from the database by seq).
    transaction.on_commit(send, robust=True)


@transaction.atomic
def event_record(*, execution_id: uuid.UUID, event: str, data: dict[str, Any]) -> ExecutionEvent:
    """Persist one event of a run that no engine owns right now (queued, or being cancelled
    or failed outside an engine).

    Call inside the transaction that makes the change the event reports. The next ``seq`` is
    read inside it; the unique (execution, seq) constraint refuses a second writer.
    """
    last = ExecutionEvent.objects.filter(execution_id=execution_id).aggregate(m=Max("seq"))
    seq = (last["m"] or 0) + 1
    row = ExecutionEvent.objects.create(
        execution_id=execution_id, seq=seq, event=event, data=data, ts=timezone.now()
    )
    _publish_rows_on_commit(execution_id, [row])
    return row


@dataclass(slots=True)
class PendingEvent:
    """An event numbered by an ``EventLog`` and not yet stored (a model instance costs more
    to build than the rest of a trivial node's work)."""

    execution_id: uuid.UUID
    seq: int
    event: str
    data: dict[str, Any]
    ts: Any


class EventLog:
    """The single writer of one claimed execution's events.

    ``add`` numbers an event and buffers it; ``write`` (called by the engine inside its flush
    transaction) stores the buffer with one bulk insert and publishes it after commit. Only the
    engine's coordinator thread uses it, so ``seq`` needs no lock.
    """

    def __init__(self, execution_id: uuid.UUID, *, last_seq: int):
        self.execution_id = execution_id
        self.last_seq = last_seq
        self._pending: list[PendingEvent] = []

    def add(self, event: str, data: dict[str, Any], ts=None) -> PendingEvent:
        self.last_seq += 1
        row = PendingEvent(self.execution_id, self.last_seq, event, data, ts or timezone.now())
        self._pending.append(row)
        return row

    @property
    def pending(self) -> int:
        return len(self._pending)

    def write(self) -> None:
        """Store the buffered events; publish them when the surrounding transaction commits.

        Precondition: inside ``transaction.atomic`` (the engine's flush).
        """
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        insert_rows(
            ExecutionEvent._meta.db_table,
            EVENT_COLUMNS,
            ((r.execution_id, r.seq, r.event, r.data, r.ts) for r in rows),
        )
        _publish_rows_on_commit(self.execution_id, rows)

    def discard(self, seq_after: int) -> None:
        """Forget buffered events (a flush that rolled back): numbering restarts after it."""
        self._pending = []
        self.last_seq = seq_after


class TokenStream:
    """Publishes one node's ``node.token`` messages, coalesced.

    Text pushed faster than every ``WORKFLOW_TOKEN_COALESCE_MS`` is joined into one message;
    ``index`` counts messages from 0 and starts over after ``restart`` (a retried call, whose
    ``node.retrying`` event told subscribers to drop the partial text). Thread-safe: the node
    thread pushes, the coordinator may flush.
    """

    def __init__(self, execution_id: uuid.UUID, node_id: str):
        self.execution_id = execution_id
        self.node_id = str(node_id)
        self.interval = settings.WORKFLOW_TOKEN_COALESCE_MS / 1000.0
        self.index = 0
        self._buffer: list[str] = []
        self._last = 0.0
        self._lock = threading.Lock()

    def push(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            self._buffer.append(text)
            if time.monotonic() - self._last >= self.interval:
                self._send_locked()

    def flush(self) -> None:
        with self._lock:
            self._send_locked()

    def flush_if_due(self) -> None:
        """Send text held back longer than the window (the model paused after a burst)."""
        if self._buffer and time.monotonic() - self._last >= self.interval:
            with self._lock:
                if self._buffer and time.monotonic() - self._last >= self.interval:
                    self._send_locked()

    @property
    def holding(self) -> bool:
        return bool(self._buffer)

    def restart(self) -> None:
        with self._lock:
            self._buffer = []
            self.index = 0

    def _send_locked(self) -> None:
        if not self._buffer:
            return
        text, self._buffer = "".join(self._buffer), []
        message = event_message(
            topic=execution_topic(self.execution_id),
            event="node.token",
            data={"node": self.node_id, "index": self.index, "text": text},
            ts=timezone.now().isoformat(),
        )
        self.index += 1
        self._last = time.monotonic()
        _publish(self.execution_id, [message])
