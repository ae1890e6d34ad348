"""The ``execution:<id>`` socket topic and the ``execution.cancel`` message."""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Max

from canvas.core import events, realtime
from canvas.core.exceptions import ApplicationError, NotFoundError
from graphs.registry import UnknownNodeType
from workflows.events import STORED_FIELDS, stored_messages
from workflows.models import TERMINAL_STATUSES, Execution, ExecutionEvent
from workflows.nodes.base import node_class
from workflows.selectors import EVENTS_PAGE_SIZE, execution_node_statuses
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
        if event in STREAM_START_EVENTS:
            return realtime.StreamMark(str(data["node"]), started=True, attempt=data.get("attempt"))
        if event in NODE_END_EVENTS:
            # A completed LLM node's tokens add up to its text output.
            text = None
            if event == events.NODE_COMPLETED and _streams_text(data.get("type")):
                text = (data.get("outputs") or {}).get("text")
            return realtime.StreamMark(
                str(data["node"]), final_text=text if isinstance(text, str) else None
            )
        if event in FINAL_EVENTS:
            return realtime.StreamMark(None)
        return None

    def open(self, *, user, object_id: uuid.UUID, after: int | None) -> realtime.Opened:
        # The group was joined before this read, so anything committed from now on also
        # arrives live. Read last_seq before the status and node statuses: the snapshot is
        # then at least as new as last_seq. (last_seq of a run that is not the user's is read
        # and dropped: the status read that follows is the ownership check.)
        last_seq = self._last_seq(object_id)
        status = (
            Execution.objects.filter(owner=user, pk=object_id)
            .values_list("status", flat=True)
            .first()
        )
        if status is None:
            raise NotFoundError("Execution not found.")
        snapshot = {
            "status": status,
            "nodes": execution_node_statuses(execution_id=object_id),
            "last_seq": last_seq,
        }
        if after is None:
            replay, sent = [], last_seq
        else:
            replay, cursor = [], after
            while True:
                page = self.events_after(object_id=object_id, after=cursor)
                replay += page
                if len(page) < EVENTS_PAGE_SIZE:
                    break
                cursor = page[-1]["seq"]
            sent = replay[-1]["seq"] if replay else after
        # Nothing more will come once the terminal event was sent; otherwise the consumer
        # keeps checking the tail on its heartbeat.
        final = bool(replay) and replay[-1]["event"] in FINAL_EVENTS
        if after is None and status in TERMINAL_STATUSES:
            final = self._last_seq(object_id) == last_seq
        return realtime.Opened(snapshot=snapshot, events=replay, last_seq=sent, final=final)

    @staticmethod
    def _last_seq(execution_id: uuid.UUID) -> int:
        last = ExecutionEvent.objects.filter(execution_id=execution_id).aggregate(m=Max("seq"))
        return last["m"] or 0

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
        rows = (
            ExecutionEvent.objects.filter(execution_id=object_id, seq__gt=after)
            .order_by("seq")
            .values_list(*STORED_FIELDS)[:limit]
        )
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
