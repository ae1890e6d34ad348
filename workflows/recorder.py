"""What a run records: node runs, events, cache rows, and the fenced flush that stores them.

One ``RunRecorder`` per claimed run, used only by its runner's coordinator thread. Each
``node_*`` method changes the node's working copy (``RunState``) and numbers the event it
reports; ``flush`` stores everything changed since the last one in one short transaction,
sent as one statement on PostgreSQL (``workflows.rowwriter.Writes``):

- the execution row first, fenced: its ``heartbeat_at`` (and the final fields at the end) is
  written only where ``worker`` is this runner and ``status`` is ``running``. No row matched
  means the run was taken over or ended elsewhere: ``LostOwnership``, and nothing else is
  written. A recorder made with ``claim_at`` has not claimed its run yet: its first flush
  claims it (``workflows.lease.claim_queued_statement``) with the same fields, and a claim
  that fails raises ``NotClaimed`` and writes nothing;
- new node runs as multi-row inserts, changed ones as updates;
- the output cache's new rows; the numbered events (published once the transaction commits).

Batching keeps the per-node cost well under a millisecond on SQLite and ``seq`` allocation in
one thread.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from uuid6 import uuid7

from canvas.core import events
from workflows.cache import cache_lookup, cache_prune_maybe, cache_row, cache_rows_write
from workflows.events import EventLog, event_record
from workflows.lease import claim_queued_statement, owned_execution_statement
from workflows.models import Execution, ExecutionStatus, NodeRun, NodeRunStatus
from workflows.rowwriter import DATETIME, JSON, PLAIN, UUID, Writes

NODE_RUN_COLUMNS = (
    ("id", UUID),
    ("created_at", DATETIME),
    ("updated_at", DATETIME),
    ("execution_id", UUID),
    ("node_id", UUID),
    ("node_type", PLAIN),
    ("status", PLAIN),
    ("inputs", JSON),
    ("outputs", JSON),
    ("error", PLAIN),
    ("attempts", PLAIN),
    ("queued_at", DATETIME),
    ("started_at", DATETIME),
    ("finished_at", DATETIME),
    ("usage", JSON),
    ("cache_key", PLAIN),
)
# What a flush sets on a node run stored by an earlier one, by its id (first).
NODE_RUN_UPDATE_COLUMNS = (
    ("id", UUID),
    ("status", PLAIN),
    ("inputs", JSON),
    ("outputs", JSON),
    ("error", PLAIN),
    ("attempts", PLAIN),
    ("started_at", DATETIME),
    ("finished_at", DATETIME),
    ("usage", JSON),
    ("cache_key", PLAIN),
)
# What a worker that died left behind and a resumed run keeps.
KEPT_STATUSES = (
    NodeRunStatus.SUCCEEDED,
    NodeRunStatus.CACHED,
    NodeRunStatus.SKIPPED,
    NodeRunStatus.FAILED,
)


def ordered_id() -> uuid.UUID:
    """A node run's id: a UUID version 7 (RFC 9562: the time in milliseconds, then random
    bits), from the ``uuid6`` package until Python 3.14's ``uuid.uuid7``; ids made together
    sort together.

    The rows' primary key index then grows at its end: a flush's node runs land in one or two
    of its pages instead of one random page each (uuid4), fewer pages to write per commit.
    """
    return uuid7()


class LostOwnership(Exception):
    """The execution row is no longer this runner's (taken over or already finished)."""


class NotClaimed(Exception):
    """The first flush of an unclaimed run could not claim it (another runner did, or it was
    cancelled, since it was read): nothing was written."""


@dataclass(slots=True)
class RunState:
    """The working copy of a NodeRun row (a model instance per node costs more than a
    trivial node's work)."""

    id: uuid.UUID
    execution_id: uuid.UUID
    node_id: str
    node_type: str
    status: str = NodeRunStatus.PENDING
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    error: str = ""
    attempts: int = 0
    queued_at: Any = None
    started_at: Any = None
    finished_at: Any = None
    usage: Any = None
    cache_key: str = ""
    stored: bool = False

    @classmethod
    def from_row(cls, row: NodeRun) -> RunState:
        return cls(
            id=row.id,
            execution_id=row.execution_id,
            node_id=str(row.node_id),
            node_type=row.node_type,
            status=row.status,
            inputs=row.inputs,
            outputs=row.outputs,
            error=row.error,
            attempts=row.attempts,
            queued_at=row.queued_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            usage=row.usage,
            cache_key=row.cache_key,
            stored=True,
        )

    def as_update_row(self) -> tuple:
        """The values in ``NODE_RUN_UPDATE_COLUMNS`` order."""
        return (
            self.id,
            self.status,
            self.inputs,
            self.outputs,
            self.error,
            self.attempts,
            self.started_at,
            self.finished_at,
            self.usage,
            self.cache_key,
        )

    def as_row(self, now) -> tuple:
        """The values in ``NODE_RUN_COLUMNS`` order."""
        return (
            self.id,
            now,
            now,
            self.execution_id,
            self.node_id,
            self.node_type,
            self.status,
            self.inputs,
            self.outputs,
            self.error,
            self.attempts,
            self.queued_at,
            self.started_at,
            self.finished_at,
            self.usage,
            self.cache_key,
        )


class RunRecorder:
    """The run's state as stored: node runs, numbered events, cache rows."""

    def __init__(
        self,
        *,
        execution_id: uuid.UUID,
        worker_id: str,
        owner_id: int,
        node_types: dict[str, str],
        last_seq: int,
        resumed: bool,
        claim_at=None,
    ):
        self.execution_id = execution_id
        self.worker_id = worker_id
        self.owner_id = owner_id
        self.node_types = node_types
        self.log = EventLog(execution_id, last_seq=last_seq)
        self.runs: dict[str, RunState] = {}
        # Node runs an earlier worker of this run stored (a resumed run).
        self.existing: dict[str, RunState] = {}
        if resumed:
            for row in NodeRun.objects.filter(execution_id=execution_id):
                run = RunState.from_row(row)
                self.existing[run.node_id] = run
                self.runs[run.node_id] = run
        self._new: list[RunState] = []
        self._dirty: dict[str, RunState] = {}
        self._cache_rows: list[tuple] = []
        # Not claimed yet: when it was read queued (its start) and its last event then.
        self._claim = None if claim_at is None else (claim_at, last_seq)

    @property
    def claimed(self) -> bool:
        return self._claim is None

    # --- node runs --------------------------------------------------------------------------

    def run(self, nid: str) -> RunState:
        """The node's working copy, created (pending) on first use; marked for the flush."""
        run = self.runs.get(nid)
        if run is None:
            run = RunState(
                id=ordered_id(),
                execution_id=self.execution_id,
                node_id=nid,
                node_type=self.node_types[nid],
            )
            self.runs[nid] = run
            self._new.append(run)
        elif run.stored:
            self._dirty[nid] = run
        return run

    def _event_data(self, nid: str, status: str, **extra) -> dict[str, Any]:
        data = {"node": nid, "type": self.node_types[nid], "status": status}
        data.update(extra)
        return data

    def execution_started(self) -> None:
        self.log.add(events.EXECUTION_STARTED, {"status": ExecutionStatus.RUNNING})

    def node_started(self, nid: str, *, inputs: dict, key: str, queued_at=None) -> int:
        """The node starts its first attempt; returns the attempt number."""
        now = timezone.now()
        run = self.run(nid)
        run.status = NodeRunStatus.RUNNING
        run.inputs = inputs
        run.attempts = (run.attempts or 0) + 1
        run.started_at = now
        run.queued_at = queued_at or now
        run.cache_key = key
        self.log.add(
            events.NODE_STARTED, self._event_data(nid, "running", attempt=run.attempts), ts=now
        )
        return run.attempts

    def node_resumed(self, nid: str, *, inputs: dict, key: str) -> int:
        """A node that was in flight when its worker died runs again; returns the attempt."""
        now = timezone.now()
        run = self.run(nid)
        run.attempts = (run.attempts or 1) + 1
        run.status = NodeRunStatus.RUNNING
        run.inputs = inputs
        run.cache_key = key
        self.log.add(
            events.NODE_RETRYING,
            self._event_data(
                nid, "running", attempt=run.attempts, error="interrupted: worker lost"
            ),
            ts=now,
        )
        return run.attempts

    def node_retrying(self, nid: str, *, attempt: int, error: str) -> None:
        self.run(nid).attempts = attempt
        self.log.add(
            events.NODE_RETRYING, self._event_data(nid, "running", attempt=attempt, error=error)
        )

    def node_cached(self, nid: str, *, key: str, inputs: dict, outputs: dict) -> None:
        now = timezone.now()
        run = self.run(nid)
        run.status = NodeRunStatus.CACHED
        run.inputs = inputs
        run.outputs = outputs
        run.cache_key = key
        run.started_at = run.started_at or now
        run.finished_at = now
        self.log.add(events.NODE_CACHED, self._event_data(nid, "cached", outputs=outputs), ts=now)

    def node_succeeded(self, nid: str, *, outputs: dict, usage, key: str) -> None:
        """The node finished; with a cache ``key`` its outputs go to the cache too."""
        now = timezone.now()
        run = self.run(nid)
        run.status = NodeRunStatus.SUCCEEDED
        run.outputs = outputs
        run.finished_at = now
        if usage is not None:
            run.usage = usage
        self.log.add(
            events.NODE_COMPLETED,
            self._event_data(nid, "succeeded", outputs=outputs, attempt=run.attempts),
            ts=now,
        )
        if key:
            self._cache_rows.append(
                cache_row(
                    key=key,
                    owner_id=self.owner_id,
                    node_type=self.node_types[nid],
                    outputs=outputs,
                    now=now,
                )
            )

    def node_failed(self, nid: str, message: str) -> str:
        """Returns the message as stored (NUL characters replaced)."""
        message = message.replace("\x00", "\ufffd")
        now = timezone.now()
        run = self.run(nid)
        run.status = NodeRunStatus.FAILED
        run.error = message
        run.finished_at = now
        run.started_at = run.started_at or now
        self.log.add(
            events.NODE_FAILED,
            self._event_data(nid, "failed", error=message, attempt=run.attempts),
            ts=now,
        )
        return message

    def node_skipped(self, nid: str) -> None:
        existing = self.existing.get(nid)
        if existing is not None and existing.status == NodeRunStatus.SKIPPED:
            return  # recorded by the earlier worker
        now = timezone.now()
        run = self.run(nid)
        run.status = NodeRunStatus.SKIPPED
        run.finished_at = now
        self.log.add(events.NODE_SKIPPED, self._event_data(nid, "skipped"), ts=now)

    def node_cancelled(self, nid: str) -> None:
        run = self.run(nid)
        run.status = NodeRunStatus.CANCELLED
        run.finished_at = timezone.now()

    def node_usage(self, nid: str, usage) -> None:
        self.run(nid).usage = usage

    def cache_lookup(self, key: str) -> dict | None:
        return cache_lookup(key)

    # --- writing ----------------------------------------------------------------------------

    @property
    def pending_writes(self) -> bool:
        return bool(self.log.pending or self._new or self._dirty or self._cache_rows)

    def flush(self, final: dict[str, Any] | None = None) -> None:
        """One short transaction: heartbeat (fenced), node runs, cache rows, events.

        ``final``: more fields of the execution row (its end). Raises ``LostOwnership``.
        """
        now = timezone.now()
        fields: dict[str, Any] = {"heartbeat_at": now}
        if final:
            fields.update(final)
        if self._claim is not None:
            started, last_seq = self._claim
            fence = claim_queued_statement(
                self.execution_id,
                worker=self.worker_id,
                started=started,
                last_seq=last_seq,
                **fields,
            )
        else:
            fence = owned_execution_statement(self.execution_id, worker=self.worker_id, **fields)
        writes = Writes(fence=fence)
        if self._new:
            writes.insert(
                NodeRun._meta.db_table, NODE_RUN_COLUMNS, (r.as_row(now) for r in self._new)
            )
        if self._dirty:
            writes.update(
                NodeRun._meta.db_table,
                NODE_RUN_UPDATE_COLUMNS,
                (r.as_update_row() for r in self._dirty.values()),
            )
        if self._cache_rows:
            cache_rows_write(self._cache_rows, writes)
        self.log.write(writes)
        if not writes.run():
            raise NotClaimed if self._claim is not None else LostOwnership
        for run in self._new:
            run.stored = True
        self._claim = None
        self._new = []
        self._dirty = {}
        if self._cache_rows:
            cache_prune_maybe(written=len(self._cache_rows))
        self._cache_rows = []

    def finish(self, *, status: str, error: str, outputs: dict[str, Any]) -> None:
        """Write the terminal event and the execution's end in the last flush."""
        now = timezone.now()
        event = {
            ExecutionStatus.SUCCEEDED: events.EXECUTION_COMPLETED,
            ExecutionStatus.CANCELLED: events.EXECUTION_CANCELLED,
            ExecutionStatus.FAILED: events.EXECUTION_FAILED,
        }[status]
        data: dict[str, Any] = {"status": status}
        if error:
            data["error"] = error
        if status == ExecutionStatus.SUCCEEDED:
            data["outputs"] = outputs
        self.log.add(event, data, ts=now)
        self.flush(final={"status": status, "error": error, "outputs": outputs, "finished_at": now})


def execution_fail_owned(*, execution_id: uuid.UUID, worker_id: str, message: str) -> None:
    """An engine bug or a database failure: fail the run instead of leaving it running, if
    ``worker_id`` still owns it (its numbered events may be lost with the failed flush, so the
    event is numbered from the stored log)."""
    with transaction.atomic():
        updated = Execution.objects.filter(
            pk=execution_id, worker=worker_id, status=ExecutionStatus.RUNNING
        ).update(status=ExecutionStatus.FAILED, error=message, finished_at=timezone.now())
        if updated:
            event_record(
                execution_id=execution_id,
                event=events.EXECUTION_FAILED,
                data={"status": ExecutionStatus.FAILED, "error": message},
            )
