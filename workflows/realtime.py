"""The ``execution:<id>`` socket topic and the ``execution.cancel`` message."""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Max

from canvas.core import events, realtime
from canvas.core.exceptions import ApplicationError
from canvas.core.replays import CachedLog
from graphs.registry import UnknownNodeType
from workflows.events import replay_cache, stored_messages
from workflows.models import TERMINAL_STATUSES, ExecutionEvent
from workflows.nodes.base import node_class
from workflows.selectors import (
    EVENTS_PAGE_SIZE,
    execution_events_after,
    execution_snapshot_and_events_for_user,
    execution_snapshot_for_user,
)
from workflows.services import execution_cancel_for_user

FINAL_EVENTS = events.EXECUTION_FINAL_EVENTS
# A node's token stream (re)starts at index 0 with these, and ends with the others.
STREAM_START_EVENTS = frozenset({events.NODE_STARTED, events.NODE_RETRYING})
NODE_END_EVENTS = frozenset(
    {events.NODE_COMPLETED, events.NODE_FAILED, events.NODE_SKIPPED, events.NODE_CACHED}
)


def _streams_text(node_type: Any) -> bool:
    try:
        return node_class(node_type).streams_text
    except (UnknownNodeType, TypeError):
        return False


@realtime.register_topic
class ExecutionTopic(realtime.Topic):
    kind = events.EXECUTION
    sequenced = True
    final_events = FINAL_EVENTS
    stream_event = events.NODE_TOKEN
    stream_field = "node"

    def stream_mark(self, message: dict[str, Any]) -> realtime.StreamMark | None:
        event, data = message["event"], message["data"]
        if event in FINAL_EVENTS:
            return realtime.StreamMark(None)
        if event not in STREAM_START_EVENTS and event not in NODE_END_EVENTS:
            return None
        node_type = data.get("type")
        streams = _streams_text(node_type)
        if not streams and node_type is not None:
            # A node of a type that never streams text (a template, an HTTP call...) has no
            # stream for a socket to keep in order: no mark, and no stream state per socket
            # (~15 % of a fan-out's CPU per frame with 500 sockets on a chain of templates,
            # docs/benchmarks.md). An event without its node's type keeps its marks.
            return None
        if event in STREAM_START_EVENTS:
            return realtime.StreamMark(str(data["node"]), started=True, attempt=data.get("attempt"))
        # A completed LLM node's tokens add up to its text output.
        text = None
        if event == events.NODE_COMPLETED and streams:
            text = (data.get("outputs") or {}).get("text")
        return realtime.StreamMark(
            str(data["node"]), final_text=text if isinstance(text, str) else None
        )

    def open(self, *, user, object_id: uuid.UUID, after: int | None) -> realtime.Opened:
        # The group was joined before this read, so anything committed from now on also
        # arrives live. One statement checks ownership and reads the status, the node statuses
        # and last_seq together, so the snapshot is of one moment (events read after it may
        # run past its last_seq: they are committed, and the seq check drops their live
        # copies); and a run's terminal status commits with its final event (the recorder's
        # last flush, a queued run's cancel, execution_fail_owned), so a terminal status read
        # here comes with a last_seq that includes the final event.
        cached = replay_cache.get(object_id)
        if cached is not None and cached.final:
            # A finished run's log and snapshot are kept: only ownership is read (and the
            # status, which a final log's run keeps).
            head = execution_snapshot_for_user(user=user, execution_id=object_id, with_nodes=False)
            if head["status"] in TERMINAL_STATUSES:
                return self._opened_from(cached, after)
        if after is None:
            snapshot = execution_snapshot_for_user(user=user, execution_id=object_id)
            # Nothing more will come after a terminal status: its last_seq is the final event's.
            final = snapshot["status"] in TERMINAL_STATUSES
            return realtime.Opened(snapshot=snapshot, last_seq=snapshot["last_seq"], final=final)
        keeping = replay_cache.limit > 0 and not replay_cache.oversized(object_id)
        if keeping and cached is not None:
            # Its log is kept (a run executed here, or subscribed to before), often whole:
            # the snapshot, then the events stored since only if there are any.
            snapshot = execution_snapshot_for_user(user=user, execution_id=object_id)
            start = cached.last_seq
            rows = []
            if start < snapshot["last_seq"]:
                rows = execution_events_after(execution_id=object_id, after=start)
        else:
            # Nothing of it kept: the snapshot and the events in one statement (one round
            # trip), from the start when they will be kept, else after ``after``.
            start = 0 if keeping else after
            snapshot, rows = execution_snapshot_and_events_for_user(
                user=user, execution_id=object_id, after=start
            )
        read = stored_messages(object_id, rows)
        if len(rows) == EVENTS_PAGE_SIZE:
            read += self._log_after(object_id, read[-1]["seq"])
        last_seq = snapshot["last_seq"]
        finished = snapshot["status"] in TERMINAL_STATUSES
        if not keeping:
            replay = read
        else:
            ended = snapshot if finished else None
            log = self._cached_log(object_id, cached, read, last_seq, ended)
            # None: what was read does not continue the kept log (it always does).
            replay = log.after(after) if log is not None else self._log_after(object_id, after)
        sent = replay[-1]["seq"] if replay else after
        # Nothing more will come once the terminal event was sent; otherwise the consumer
        # keeps checking the tail on its heartbeat.
        final = bool(replay) and replay[-1]["event"] in FINAL_EVENTS
        return realtime.Opened(snapshot=snapshot, events=replay, last_seq=sent, final=final)

    def _cached_log(
        self,
        object_id: uuid.UUID,
        cached: CachedLog | None,
        rest: list[dict[str, Any]],
        last_seq: int,
        finished_snapshot: dict[str, Any] | None,
    ) -> CachedLog | None:
        """The run's log: the cached prefix plus ``rest``, the events stored after it (read
        with the snapshot), kept for the next subscribers; None when ``rest`` does not
        continue the prefix. ``finished_snapshot``: the snapshot of a run read as terminal,
        kept with its log once that ends in the final event."""
        prefix = cached.messages if cached is not None else ()
        have = len(prefix)
        if rest:
            if rest[0]["seq"] != have + 1 or rest[-1]["seq"] != have + len(rest):
                return None
            prefix += tuple(realtime.with_encoded_frame(message) for message in rest)
        final = bool(prefix) and prefix[-1]["event"] in FINAL_EVENTS
        if len(prefix) == have and not (final and finished_snapshot is not None):
            return cached  # nothing new to keep
        snapshot = finished_snapshot if final and len(prefix) == last_seq else None
        # (A log over the cache's bound is answered without being kept.)
        return replay_cache.put(object_id, prefix, snapshot=snapshot)

    @staticmethod
    def _opened_from(cached: CachedLog, after: int | None) -> realtime.Opened:
        """A subscribe to a finished run served from its cached log: the same messages and
        frames as a read from the database, and nothing more will come (``final``), whatever
        ``after`` the client gave."""
        if after is None:
            replay, sent = [], cached.last_seq
        else:
            replay = cached.after(after)
            sent = replay[-1]["seq"] if replay else after
        return realtime.Opened(snapshot=cached.snapshot, events=replay, last_seq=sent, final=True)

    def _log_after(self, object_id: uuid.UUID, after: int) -> list[dict[str, Any]]:
        """Every stored event with ``seq > after``, page by page."""
        replay, cursor = [], after
        while True:
            page = self.events_after(object_id=object_id, after=cursor)
            replay += page
            if len(page) < EVENTS_PAGE_SIZE:
                return replay
            cursor = page[-1]["seq"]

    def last_seqs(self, object_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        tails: dict[uuid.UUID, int] = {}
        # SQLite binds at most 999 parameters a statement.
        for start in range(0, len(object_ids), 900):
            rows = (
                ExecutionEvent.objects.filter(execution_id__in=object_ids[start : start + 900])
                .values_list("execution_id")
                .annotate(last=Max("seq"))
                .order_by()
            )
            tails.update(rows)
        return tails

    def events_after(
        self, *, object_id: uuid.UUID, after: int, limit: int = EVENTS_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        rows = execution_events_after(execution_id=object_id, after=after, limit=limit)
        return stored_messages(object_id, rows)


@realtime.message_handler("execution.cancel")
async def execution_cancel_message(consumer, message: dict[str, Any]) -> None:
    """Cancel a run; subscribers see its ``execution.cancelled`` event. Idempotent."""
    execution_id = message.get("execution")
    if not isinstance(execution_id, str):
        raise ApplicationError("'execution' must be an execution id.", code="invalid")
    await database_sync_to_async(execution_cancel_for_user)(
        user=consumer.user, execution_id=execution_id
    )
