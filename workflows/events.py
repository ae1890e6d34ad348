"""The one module that persists execution events (and publishes them, through the one path).

Every execution event except ``node.token`` is a row of ``ExecutionEvent`` with a gapless
``seq`` from 1, written in the same transaction as the state change it reports, and published
to the topic ``execution:<uuid>`` with ``canvas.core.publisher.publish_events_on_commit`` only
once that transaction commits. ``node.token`` is published and never stored.

One writer per execution allocates ``seq``: while a run is queued (no engine owns it yet) the
services call ``event_record``, which takes the next number inside their write transaction;
once an engine has claimed the run, its ``EventLog`` is the only writer, and a flush's events
leave as one batch. The process-wide publisher hands messages to one long-lived loop in the
order they were given, so one writer thread's batches reach subscribers in ``seq`` order.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from canvas.core.events import NODE_TOKEN, execution_topic
from canvas.core.publisher import Event, publish_events_on_commit, publish_on_commit
from canvas.core.realtime import event_message, timestamp
from canvas.core.replays import ReplayCache
from workflows.models import ExecutionEvent
from workflows.rowwriter import DATETIME, JSON, PLAIN, UUID, Writes

EVENT_COLUMNS = (
    ("execution_id", UUID),
    ("seq", PLAIN),
    ("event", PLAIN),
    ("data", JSON),
    ("ts", DATETIME),
)


# Runs' stored logs, encoded once per process for the subscribes' replays
# (canvas/core/replays.py): a run executed in this process is kept as its events commit.
replay_cache = ReplayCache()

# The columns ``stored_messages`` takes, in order (``values_list(*STORED_FIELDS)``).
STORED_FIELDS = ("seq", "event", "data", "ts")


def stored_messages(execution_id: uuid.UUID, rows) -> list[dict[str, Any]]:
    """The group messages of persisted events (what the socket replays and backfills), from
    ``(seq, event, data, ts)`` tuples: a 200-node run's replay is ~400 of them, and model
    instances cost more to build than the rest."""
    topic = execution_topic(execution_id)
    return [
        event_message(topic=topic, event=event, data=data, ts=timestamp(ts), seq=seq)
        for seq, event, data, ts in rows
    ]


def event_as_message(row: ExecutionEvent) -> dict[str, Any]:
    """The group message of one persisted event."""
    return stored_messages(row.execution_id, [(row.seq, row.event, row.data, row.ts)])[0]


def _publish_on_commit(execution_id: uuid.UUID, rows) -> None:
    publish_events_on_commit(
        execution_topic(execution_id),
        [Event(row.event, row.data, row.seq, timestamp(row.ts)) for row in rows],
        sent=partial(replay_cache.extend, execution_id),
    )


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
    _publish_on_commit(execution_id, [row])
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

    def write(self, writes: Writes) -> None:
        """Add the buffered events to ``writes`` (the engine's flush, a run's creation); they
        are published once it commits."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        writes.insert(
            ExecutionEvent._meta.db_table,
            EVENT_COLUMNS,
            ((r.execution_id, r.seq, r.event, r.data, r.ts) for r in rows),
        )
        writes.on_commit(partial(_publish_on_commit, self.execution_id, rows))


class TokenStream:
    """Publishes one node's ``node.token`` messages, coalesced.

    Each ``push`` is one token. Tokens pushed faster than every ``WORKFLOW_TOKEN_COALESCE_MS``
    travel as one message ``{node, index, count, text}``: ``index`` is the first token's (from
    0), ``count`` how many. Both start over after ``restart`` (a retried call, whose
    ``node.retrying`` event told subscribers to drop the partial text). The message also
    carries the attempt and the text's offset in it, for the consumer's order per socket
    (``canvas.core.realtime.event_message``). Thread-safe: the node thread pushes, the
    coordinator may flush.
    """

    def __init__(self, execution_id: uuid.UUID, node_id: str, *, attempt: int = 1):
        self.topic = execution_topic(execution_id)
        self.node_id = str(node_id)
        self.attempt = attempt
        self.interval = settings.WORKFLOW_TOKEN_COALESCE_MS / 1000.0
        self.index = 0
        self.offset = 0
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

    def restart(self, *, attempt: int) -> None:
        with self._lock:
            self._buffer = []
            self.index = self.offset = 0
            self.attempt = attempt

    def _send_locked(self) -> None:
        if not self._buffer:
            return
        count, text, self._buffer = len(self._buffer), "".join(self._buffer), []
        # Published at once: a node thread holds no transaction.
        publish_on_commit(
            self.topic,
            NODE_TOKEN,
            {"node": self.node_id, "index": self.index, "count": count, "text": text},
            stream={"attempt": self.attempt, "offset": self.offset},
        )
        self.index += count
        self.offset += len(text)
        self._last = time.monotonic()
