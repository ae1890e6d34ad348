"""The workflow engine's runner: the loop that takes one execution to exactly one end.

One ``ExecutionRunner`` per claimed execution, in three parts that each own their state:

- ``workflows/scheduler.py`` decides (which node is ready, which is skipped, the outputs):
  plain data, no Django, no threads;
- ``workflows/recorder.py`` records (node runs, numbered events, cache rows, the fenced flush);
- this module is only the loop: the claim, the threads, the clock (timeouts, flush and
  heartbeat intervals), and the hand-offs between the two.

Cancel: the runner holds a ``Cancellation`` that the process's cancel watcher
(``integrations.cancellation.watcher``, the same one chat replies use) cancels when the run's
``cancel_requested`` is set in another process; ``notify_cancel`` cancels it at once in this
one. Either way the coordinator is woken and stops the run; its in-flight nodes' streams are
shut down.

The coordinator thread (the one that calls ``run``) is the only writer of the run. It runs cheap
nodes (``Node.blocking`` false) itself and hands slow ones to the per-process node pool
(``workflows/pool.py``), whose outcomes come back through a queue. A flush happens at least every
``FLUSH_INTERVAL`` while nodes finish, before a slow node starts, at every heartbeat and at the
end.

A node's contract (``run(ctx) -> dict``, ``NodeError``, the class attributes) is
``workflows/nodes/base.py``.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import deque
from datetime import timedelta
from typing import Any

from cachetools import LRUCache
from django.conf import settings
from django.db import InterfaceError as DbInterfaceError
from django.db import OperationalError as DbOperationalError
from django.utils import timezone

from canvas.core.connections import release_connection
from integrations.cancellation import Cancellation, watcher
from workflows.cache import cache_key
from workflows.events import TokenStream
from workflows.lease import ClaimedRun, claim_execution, read_queued, run_flags
from workflows.models import ExecutionStatus, NodeRunStatus
from workflows.nodes.base import (
    Node,
    NodeContext,
    NodeError,
    checked_outputs,
    node_class,
)
from workflows.pool import InFlight
from workflows.recorder import (
    KEPT_STATUSES,
    LostOwnership,
    NotClaimed,
    RunRecorder,
    execution_fail_owned,
)
from workflows.scheduler import Scheduler

logger = logging.getLogger(__name__)

# A flush happens at least this often while nodes complete, so subscribers see progress.
FLUSH_INTERVAL = 0.05
# Results and cancels wake the coordinator at once; with nothing arriving it still looks at
# its clock this often (text a node's token stream held back after a burst leaves then).
IDLE_WAKE = 0.5
# After cancel or failure, in-flight nodes get this long to return before they are recorded
# as cancelled anyway (their streams were shut down, so they normally return at once).
STOP_GRACE = 2.0


def notify_cancel(execution_id: uuid.UUID | str) -> None:
    """Cancel the run of ``execution_id`` at once if this process runs it (the flag is in
    the database for any other process's watcher)."""
    watcher.cancel(run_flags, uuid.UUID(str(execution_id)))


# This process's part of its runners' ids ("host:pid:random"), made again after a fork.
_process_id: tuple[int, str] | None = None
_runner_numbers = itertools.count(1)


def new_worker_id() -> str:
    """A runner's id (its fence on the execution row): this process's id and a number, so
    no two runners anywhere share one, without a random draw and a hostname call per run."""
    global _process_id
    pid = os.getpid()
    if _process_id is None or _process_id[0] != pid:
        _process_id = (pid, f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}")
    return f"{_process_id[1]}:{next(_runner_numbers)}"


def execution_run(
    execution_id: uuid.UUID | str,
    *,
    worker_id: str | None = None,
    queued: ClaimedRun | None = None,
) -> str | None:
    """Claim and run one execution in this thread; see ``ExecutionRunner.run``."""
    try:
        return ExecutionRunner(execution_id, worker_id=worker_id).run(queued=queued)
    finally:
        release_connection()


def plan(snapshot: dict) -> tuple[dict[str, dict], dict, dict, Scheduler]:
    """A snapshot's nodes by id, their ``Node`` classes, their configs (schema defaults
    filled in) and the scheduler of their graph."""
    nodes: dict[str, dict] = {str(node["id"]): node for node in snapshot["nodes"]}
    types: dict[str, type[Node]] = {}
    configs: dict[str, dict] = {}
    required: dict[str, set[str]] = {}
    for nid, node in nodes.items():
        cls = types[nid] = node_class(node["type"])
        config = configs[nid] = cls.config_with_defaults(node.get("config") or {})
        required[nid] = {p.name for p in cls.input_ports(config) if p.required}

    def collects(node: dict) -> str | None:
        # An output node's value goes into the run's outputs under its name.
        if node["type"] != "output":
            return None
        return configs[str(node["id"])].get("name") or str(node["id"])

    return (
        nodes,
        types,
        configs,
        Scheduler.from_snapshot(snapshot, required=required, collects=collects),
    )


# Plans by snapshot text (both backends give it as text): the runs of one graph version
# share a snapshot, and planning it (node classes, configs with defaults, ports, the
# scheduler's graph) cost ~40 µs a node, 11 % of a 200-node run's engine thread (py-spy).
# Bounded by the texts' total length; least recently used first out.
PLAN_CACHE_CHARS = 4_000_000
# Values: (the text's length, the plan).
_plans: LRUCache[str, tuple[int, tuple]] = LRUCache(
    maxsize=PLAN_CACHE_CHARS, getsizeof=lambda entry: entry[0]
)
_plans_lock = threading.Lock()


def plan_of(claimed: ClaimedRun) -> tuple[dict[str, dict], dict, dict, Scheduler]:
    """``plan(claimed.snapshot)``, from the cache when the same snapshot was planned before.

    Shared between runs: the nodes and configs (read only: a node gets a copy of its config)
    and the scheduler's graph (each run gets a fresh scheduler of it).
    """
    raw = claimed.raw_snapshot
    if not isinstance(raw, str) or len(raw) > PLAN_CACHE_CHARS // 4:
        return plan(claimed.snapshot)
    with _plans_lock:
        entry = _plans.get(raw)
    if entry is None:
        entry = len(raw), plan(claimed.snapshot)
        with _plans_lock:
            _plans[raw] = entry
    nodes, types, configs, schedule = entry[1]
    return nodes, types, configs, schedule.fresh()


class ClaimedRunner:
    """How a runner comes to own a run, and what becomes of a run that fails outside its
    nodes: claimed (or read queued and claimed by its first flush), watched for a cancel,
    and an engine error recorded as the run's failure. ``ExecutionRunner`` is the run itself
    (``_load``, ``_main``)."""

    def __init__(self, execution_id: uuid.UUID | str, *, worker_id: str | None = None):
        self.execution_id = uuid.UUID(str(execution_id))
        self.worker_id = worker_id or new_worker_id()
        self.inflight = InFlight()
        self.cancellation = Cancellation()
        self.cancellation.on_cancel(self.inflight.wake)  # the coordinator notices at once

    def run(self, *, queued: ClaimedRun | None = None) -> str | None:
        """Run the execution to its end. Returns the final status, or None when not claimed
        (someone else runs it, or it already ended) or when ownership was lost.

        A queued run is read, not claimed, and claimed by its first flush (one commit for a
        small run; ``workflows.lease.read_queued``). Before that flush the runner writes
        nothing and starts no slow node (it flushes before starting one), so a run it then
        fails to claim is run by the usual claim, which finds it taken, ended, or (should its
        events have changed) queued still.

        ``queued``: the run as its creator stored it, when that was this process (the inline
        executor), instead of reading it: the first flush's claim checks it all the same.
        """
        now = timezone.now()
        if queued is None:
            queued = read_queued(self.execution_id)
        if queued is not None and queued.last_seq == 1 and not queued.cancel_requested:
            try:
                return self._run(queued, claim_at=now)
            except NotClaimed:
                logger.debug("execution %s: claimed elsewhere first", self.execution_id)
                return type(self)(self.execution_id, worker_id=self.worker_id)._claim_run()
        return self._claim_run(now)

    def _claim_run(self, now=None) -> str | None:
        now = now or timezone.now()
        stale = now - timedelta(seconds=settings.WORKFLOW_STALE_AFTER)
        claimed = claim_execution(self.execution_id, worker=self.worker_id, now=now, stale=stale)
        if claimed is None:
            return None
        return self._run(claimed, claim_at=None)

    def _run(self, claimed: ClaimedRun, *, claim_at) -> str | None:
        # ``claim_at``: the run was read queued then and is claimed by the first flush.
        self.unclaimed = claim_at is not None
        watcher.watch(run_flags, self.execution_id, self.cancellation)
        try:
            self._load(claimed, claim_at=claim_at)
            return self._main()
        except NotClaimed:
            self.inflight.cancel_all()
            raise
        except (LostOwnership, DbOperationalError, DbInterfaceError) as exc:
            # Taken over, or the database went away (a restart, a failover): nothing to record
            # now. A run still ours goes stale and the sweep resumes it after its last finished
            # node once the database is back (one not claimed yet stays queued: the sweep
            # dispatches it again).
            logger.warning(
                "execution %s stopped: %s: %s", self.execution_id, type(exc).__name__, exc
            )
            self.inflight.cancel_all()
            return None
        except Exception as exc:
            logger.exception("execution %s: engine error", self.execution_id)
            self.inflight.cancel_all()
            message = f"Internal error in the workflow engine: {type(exc).__name__}: {exc}"
            try:
                if self._claim_to_fail():
                    execution_fail_owned(
                        execution_id=self.execution_id, worker_id=self.worker_id, message=message
                    )
            except Exception:
                logger.exception("execution %s: could not record the failure", self.execution_id)
            return ExecutionStatus.FAILED
        finally:
            watcher.unwatch(run_flags, self.execution_id, self.cancellation)

    def _claim_to_fail(self) -> bool:
        """Whether this runner owns the run, claiming it first if it was never claimed (so an
        engine error fails the run rather than leaving it queued for the sweep to retry)."""
        recorder = getattr(self, "recorder", None)
        if not self.unclaimed or (recorder is not None and recorder.claimed):
            return True
        now = timezone.now()
        stale = now - timedelta(seconds=settings.WORKFLOW_STALE_AFTER)
        claimed = claim_execution(self.execution_id, worker=self.worker_id, now=now, stale=stale)
        return claimed is not None


class ExecutionRunner(ClaimedRunner):
    """One run's coordinator: loads its plan, runs cheap nodes inline and slow ones in the
    node pool, and writes what happens through its ``RunRecorder``."""

    def _load(self, claimed: ClaimedRun, *, claim_at=None) -> None:
        self.owner_id = claimed.owner_id
        self.exec_inputs = claimed.inputs or {}
        self.nodes, self.types, self.configs, self.schedule = plan_of(claimed)
        # A queued run has one event (execution.queued); more means an earlier worker ran it
        # and this runner resumes it (a worker that died before its first flush left nothing
        # behind, so starting afresh is right).
        resumed = claimed.last_seq > 1
        self.recorder = RunRecorder(
            execution_id=self.execution_id,
            worker_id=self.worker_id,
            owner_id=self.owner_id,
            node_types={nid: node["type"] for nid, node in self.nodes.items()},
            last_seq=claimed.last_seq,
            resumed=resumed,
            claim_at=claim_at,
        )
        self.existing = self.recorder.existing
        self.ready: deque[str] = deque(self.schedule.initially_ready())
        self.io_waiting: deque[str] = deque()
        self.ready_at: dict[str, Any] = {}  # when a slow node started waiting for a slot
        self.missed: set[str] = set()  # cacheable nodes that missed the cache in this run
        self.stop: tuple[str, str | None, str] | None = None  # (kind, node id, message)
        if not resumed:
            self.recorder.execution_started()
        for nid, run in self.existing.items():
            if run.status == NodeRunStatus.FAILED and self.stop is None and nid in self.nodes:
                # The failure was written before the worker died: the run ends failed.
                self.schedule.mark(nid, NodeRunStatus.FAILED)
                self.stop = ("failure", nid, self._failure_message(nid, run.error))
        if claimed.cancel_requested:
            # Cancelled while its worker was gone (or before the claim): end it at once.
            self.cancellation.cancel()
            if self.stop is None:
                self.stop = ("cancel", None, "Cancelled.")

    # --- the loop ---------------------------------------------------------------------------

    def _main(self) -> str:
        now = time.monotonic()
        self.exec_deadline = now + settings.WORKFLOW_EXECUTION_TIMEOUT
        self.last_flush = now
        self.max_parallel = max(1, settings.WORKFLOW_MAX_PARALLEL_NODES)
        # No flush here: execution.started leaves with the first batch (at most FLUSH_INTERVAL
        # later, or before the first slow node starts); a tiny run commits once.
        while self.stop is None:
            self._advance()
            if self.stop is not None or not (self.ready or self.io_waiting or self.inflight):
                break
            if self.recorder.pending_writes:
                self._flush()
            if self.inflight:
                # Waiting on slow nodes (an LLM reply may take minutes) holds no database
                # connection: on PostgreSQL it goes back to the pool, or eleven waiting runs
                # would take a 20-connection pool and the next request would time out. The
                # next flush takes one again.
                release_connection()
            try:
                item = self.inflight.results.get(timeout=self._wait_time())
            except queue.Empty:
                item = None
            if item is not None:
                self._on_result(item)
            self._tick()
        return self._finish()

    def _wait_time(self) -> float:
        now = time.monotonic()
        wait = min(IDLE_WAKE, settings.WORKFLOW_HEARTBEAT_INTERVAL)
        wait = min(wait, self.exec_deadline - now)
        return max(0.001, self.inflight.wait_time(now, wait))

    def _advance(self) -> None:
        """Run every ready cheap node and dispatch slow ones up to the parallel bound."""
        progressed = True
        while progressed and self.stop is None:
            progressed = False
            while self.ready and self.stop is None:
                nid = self.ready.popleft()
                if self._restore(nid):
                    progressed = True
                    continue
                if self.types[nid].blocking:
                    self.io_waiting.append(nid)
                    self.ready_at[nid] = timezone.now()
                    continue
                self._run_inline(nid)
                progressed = True
                self._tick()
            while self.io_waiting and len(self.inflight) < self.max_parallel and not self.stop:
                self._dispatch(self.io_waiting.popleft())
                progressed = True
            while self.stop is None:
                try:
                    item = self.inflight.results.get_nowait()
                except queue.Empty:
                    break
                self._on_result(item)
                progressed = True

    def _tick(self) -> None:
        """Cancel, timeouts, held tokens, and the flush or heartbeat when due."""
        now = time.monotonic()
        if self.cancellation.cancelled and self.stop is None:
            self.stop = ("cancel", None, "Cancelled.")
        if now >= self.exec_deadline and self.stop is None:
            limit = settings.WORKFLOW_EXECUTION_TIMEOUT
            self.stop = ("timeout", None, f"The execution timed out after {limit:g} s.")
        for ctx in self.inflight.expired(now):
            if self.stop is None:
                ctx.cancel()
                self._fail(ctx.node_id, f"timed out after {self._node_timeout(ctx.node_id):g} s")
        since = now - self.last_flush
        due = since >= FLUSH_INTERVAL and self.recorder.pending_writes
        if due or since >= settings.WORKFLOW_HEARTBEAT_INTERVAL:
            self._flush()

    def _flush(self) -> None:
        self.recorder.flush()
        self.last_flush = time.monotonic()

    # --- outcomes: the scheduler decides, the recorder writes -------------------------------

    def _produced(self, nid: str, outputs: dict, status: str) -> None:
        for decided, kind in self.schedule.produced(nid, outputs, status=status):
            if kind == "ready":
                self.ready.append(decided)
            else:
                self.recorder.node_skipped(decided)

    def _restore(self, nid: str) -> bool:
        """A node that finished before a recovery: reuse its outputs, emit nothing."""
        run = self.existing.get(nid)
        if run is None or run.status not in (NodeRunStatus.SUCCEEDED, NodeRunStatus.CACHED):
            return False
        self._produced(nid, run.outputs or {}, run.status)
        return True

    def _cached(self, nid: str) -> tuple[str, dict | None]:
        """The node's cache key ("" when not cacheable) and, on a hit, its recorded outputs."""
        cls, config, inputs = self.types[nid], self.configs[nid], self.schedule.inputs[nid]
        if not cls.is_cacheable(config):
            return "", None
        key = cache_key(owner_id=self.owner_id, node_type=cls.type, config=config, inputs=inputs)
        if not cls.blocking and self.schedule.is_upstream_of(self.missed, nid):
            # A cheap node fed by a node that just missed the cache is computed without a
            # lookup: the lookup costs more than the work, and a miss upstream almost always
            # means a miss here. Its row is still written, so the next run hits.
            self.missed.add(nid)
            return key, None
        hit = self.recorder.cache_lookup(key)
        if hit is None:
            self.missed.add(nid)
            return key, None
        self.recorder.node_cached(nid, key=key, inputs=inputs, outputs=hit)
        self._produced(nid, hit, NodeRunStatus.CACHED)
        return key, hit

    def _succeed(self, nid: str, outputs: dict, *, usage, key: str) -> None:
        self.recorder.node_succeeded(nid, outputs=outputs, usage=usage, key=key)
        self._produced(nid, outputs, NodeRunStatus.SUCCEEDED)

    def _fail(self, nid: str, message: str) -> None:
        message = self.recorder.node_failed(nid, message)
        self.schedule.mark(nid, NodeRunStatus.FAILED)
        self.inflight.forget(nid)
        if self.stop is None:
            self.stop = ("failure", nid, self._failure_message(nid, message))

    def _cancelled(self, nid: str) -> None:
        self.recorder.node_cancelled(nid)
        self.schedule.mark(nid, NodeRunStatus.CANCELLED)

    def _failure_message(self, nid: str, message: str) -> str:
        node = self.nodes[nid]
        label = node.get("label") or node["type"]
        return f"Node '{label}' ({node['type']}, {nid}) failed: {message}"

    # --- running nodes ----------------------------------------------------------------------

    def _node_timeout(self, nid: str) -> float:
        limit = settings.WORKFLOW_NODE_TIMEOUT
        own = self.configs[nid].get("timeout_s")
        if isinstance(own, int | float) and own > 0:
            # The node's own timeout bounds the call; the engine allows a little slack so a
            # node reporting its own timeout wins the race with the engine's.
            limit = min(limit, float(own) + 1.0)
        return limit

    def _context(self, nid: str, *, attempt: int, tokens: bool) -> NodeContext:
        node = self.nodes[nid]
        return NodeContext(
            execution_id=self.execution_id,
            owner_id=self.owner_id,
            node_id=nid,
            node_type=node["type"],
            label=node.get("label") or node["type"],
            config=dict(self.configs[nid]),
            inputs=dict(self.schedule.inputs[nid]),
            execution_inputs=self.exec_inputs,
            attempt=attempt,
            tokens=TokenStream(self.execution_id, nid, attempt=attempt) if tokens else None,
        )

    def _run_inline(self, nid: str) -> None:
        key, hit = self._cached(nid)
        if hit is not None:
            return
        inputs = self.schedule.inputs[nid]
        attempt = self.recorder.node_started(nid, inputs=inputs, key=key)
        self.schedule.mark(nid, NodeRunStatus.RUNNING)
        ctx = self._context(nid, attempt=attempt, tokens=False)
        try:
            outputs = checked_outputs(self.types[nid]().run(ctx))
        except NodeError as exc:
            self._fail(nid, exc.message)
            return
        except Exception as exc:
            logger.exception("node %s (%s) raised", nid, ctx.node_type)
            self._fail(nid, f"{type(exc).__name__}: {exc}")
            return
        self._succeed(nid, outputs, usage=None, key=key)

    def _dispatch(self, nid: str) -> None:
        """Start a slow node in the pool (or answer it from the cache)."""
        key, hit = self._cached(nid)
        if hit is not None:
            return
        cls, inputs = self.types[nid], self.schedule.inputs[nid]
        existing = self.existing.get(nid)
        if existing is not None and existing.status == NodeRunStatus.RUNNING:
            # In flight when its worker died: repeat it only when that is safe.
            if not cls.is_safe_to_repeat(self.configs[nid]):
                self._fail(
                    nid,
                    "interrupted: the worker running it stopped mid-call, and repeating a "
                    "non-GET HTTP request is not safe",
                )
                return
            attempt = self.recorder.node_resumed(nid, inputs=inputs, key=key)
        else:
            queued_at = self.ready_at.pop(nid, None)
            attempt = self.recorder.node_started(nid, inputs=inputs, key=key, queued_at=queued_at)
        self.schedule.mark(nid, NodeRunStatus.RUNNING)
        # Written before the node runs: its tokens must not overtake node.started.
        self._flush()
        ctx = self._context(nid, attempt=attempt, tokens=True)
        ctx.deadline = time.monotonic() + self._node_timeout(nid)
        self.inflight.start(ctx, cls, key)

    def _on_result(self, item) -> None:
        kind, ctx, payload = item
        if not self.inflight.current(kind, ctx, payload):
            return
        nid = ctx.node_id
        if kind == "retrying":
            error, done = payload
            self.recorder.node_retrying(nid, attempt=ctx.attempt, error=error)
            self._flush()
            done.set()
            return
        self.inflight.forget(nid)
        if kind == "done":
            outputs, key = payload
            self.recorder.node_usage(nid, ctx.usage)
            self._succeed(nid, outputs, usage=ctx.usage, key=key)
        elif kind == "error":
            if ctx.usage is not None:
                self.recorder.node_usage(nid, ctx.usage)
            self._fail(nid, payload)
        elif kind == "cancelled":
            self._cancelled(nid)

    # --- the end ----------------------------------------------------------------------------

    def _finish(self) -> str:
        if self.inflight:
            # Cancelled in-flight nodes normally return at once (their streams were shut).
            returned, abandoned = self.inflight.drain(STOP_GRACE)
            for ctx in returned:
                if ctx.usage is not None:
                    self.recorder.node_usage(ctx.node_id, ctx.usage)
                self._cancelled(ctx.node_id)
            for ctx in abandoned:
                self._cancelled(ctx.node_id)
        # Node runs a previous worker finished keep their state; nodes never reached (or still
        # running) end cancelled: the run stopped before them.
        for nid, run in self.existing.items():
            if run.status in KEPT_STATUSES:
                self.schedule.adopt(nid, run.status, run.outputs)
        for nid in self.schedule.unfinished():
            self._cancelled(nid)
        outputs = self.schedule.final_outputs()
        if self.stop is None:
            status, error = ExecutionStatus.SUCCEEDED, ""
        elif self.stop[0] == "cancel":
            status, error = ExecutionStatus.CANCELLED, ""
        else:
            status, error = ExecutionStatus.FAILED, self.stop[2]
        self.recorder.finish(status=status, error=error, outputs=outputs)
        self.last_flush = time.monotonic()
        return status
