"""The workflow engine: runs one execution's snapshot to exactly one terminal state.

One ``ExecutionRunner`` per claimed execution. Its coordinator thread is the only writer of the
run: it schedules nodes, runs the cheap ones (text, template, extract, condition, input,
output) itself, hands slow ones (llm, http: ``NodeType.blocking``) to a bounded per-process
thread pool, and batches every state change (node runs, events, cache rows, heartbeat) into
short flush transactions. Batching keeps the per-node cost well under a millisecond on SQLite
and keeps ``seq`` allocation in one thread.

Flushes are fenced: each one updates the execution row only where ``worker`` is this runner and
``status`` is ``running``; when that matches no row (the recovery sweep took a stalled run
over, or the run ended elsewhere) the runner stops without writing anything else.

Node behaviour lives in ``workflows/nodes/``: ``NodeType.run(self, ctx: NodeContext) -> dict``
returns outputs by port name (a condition returns only the port it took). A node raises
``NodeError`` for a failure it can explain; any other exception fails it too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from workflows.events import EventLog, TokenStream
from workflows.lease import ClaimedRun, claim_execution, update_owned_execution
from workflows.models import (
    Execution,
    ExecutionStatus,
    NodeOutputCache,
    NodeRun,
    NodeRunStatus,
)
from workflows.nodes.base import (
    Node,
    NodeCancelled,
    NodeContext,
    NodeError,
    checked_outputs,
    node_class,
)
from workflows.rowwriter import (
    DATETIME,
    JSON,
    PLAIN,
    UUID,
    adapt_datetime,
    insert_rows,
    select_json,
)

logger = logging.getLogger(__name__)

# A flush happens at least this often while nodes complete, so subscribers see progress.
FLUSH_INTERVAL = 0.05
# The coordinator looks at the cancel flag in the database this often (another process may
# have set it); in-process cancels arrive at once through ``notify_cancel``.
CANCEL_POLL_INTERVAL = 0.5
# After cancel or failure, in-flight nodes get this long to return before they are recorded
# as cancelled anyway (their streams were shut down, so they normally return at once).
STOP_GRACE = 2.0


class LostOwnership(Exception):
    """The execution row is no longer this runner's (taken over or already finished)."""


def cache_key(*, owner_id: int, node_type: str, config: dict, inputs: dict) -> str:
    payload = json.dumps(
        [owner_id, node_type, config, inputs], sort_keys=True, default=str, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# Identifiers from the model, values as parameters.
CACHE_LOOKUP_SQL = (
    f'SELECT "outputs" FROM "{NodeOutputCache._meta.db_table}" '  # noqa: S608
    'WHERE "key" = %s AND "expires_at" > %s'
)
CACHE_COLUMNS = (
    ("key", PLAIN),
    ("owner_id", PLAIN),
    ("node_type", PLAIN),
    ("outputs", JSON),
    ("size", PLAIN),
    ("created_at", DATETIME),
    ("expires_at", DATETIME),
)
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


@dataclass(slots=True)
class RunState:
    """The engine's working copy of a NodeRun row (a model instance per node costs more
    than a trivial node's work)."""

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


def _insert_node_runs(runs: list[RunState], now) -> None:
    insert_rows(
        NodeRun._meta.db_table,
        NODE_RUN_COLUMNS,
        (
            (
                r.id,
                now,
                now,
                r.execution_id,
                r.node_id,
                r.node_type,
                r.status,
                r.inputs,
                r.outputs,
                r.error,
                r.attempts,
                r.queued_at,
                r.started_at,
                r.finished_at,
                r.usage,
                r.cache_key,
            )
            for r in runs
        ),
    )
    for run in runs:
        run.stored = True


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str))


# --- the per-process pools and the in-process runner registry -----------------------------

_node_pool: ThreadPoolExecutor | None = None
_node_pool_lock = threading.Lock()
_runners: dict[str, ExecutionRunner] = {}
_runners_lock = threading.Lock()


def _get_node_pool() -> ThreadPoolExecutor:
    global _node_pool
    with _node_pool_lock:
        if _node_pool is None:
            _node_pool = ThreadPoolExecutor(
                max_workers=settings.WORKFLOW_NODE_THREADS, thread_name_prefix="wf-node"
            )
        return _node_pool


def notify_cancel(execution_id: uuid.UUID | str) -> None:
    """Wake the runner of ``execution_id`` in this process, if any (the flag is in the DB)."""
    with _runners_lock:
        runner = _runners.get(str(execution_id))
    if runner is not None:
        runner.cancel_event.set()
        runner.wake()


def active_runner_ids() -> list[str]:
    with _runners_lock:
        return list(_runners)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --- the runner ----------------------------------------------------------------------------


class ExecutionRunner:
    def __init__(self, execution_id: uuid.UUID | str, *, worker_id: str | None = None):
        self.execution_id = uuid.UUID(str(execution_id))
        self.worker_id = worker_id or new_worker_id()
        self.cancel_event = threading.Event()
        self.results: queue.Queue = queue.Queue()

    def wake(self) -> None:
        self.results.put(("wake", None, None))

    # --- claim ------------------------------------------------------------------------------

    def _claim(self) -> ClaimedRun | None:
        """Take the run: a queued one, or a running one whose heartbeat went stale. Returns
        what the run needs to start, read by the same statement, or None when not taken."""
        now = timezone.now()
        stale = now - timedelta(seconds=settings.WORKFLOW_STALE_AFTER)
        return claim_execution(self.execution_id, worker=self.worker_id, now=now, stale=stale)

    # --- entry point ------------------------------------------------------------------------

    def run(self) -> str | None:
        """Run the execution to its end. Returns the final status, or None when not claimed
        (someone else runs it, or it already ended) or when ownership was lost."""
        claimed = self._claim()
        if claimed is None:
            return None
        with _runners_lock:
            _runners[str(self.execution_id)] = self
        try:
            self._load(claimed)
            return self._main()
        except LostOwnership:
            logger.warning("execution %s: ownership lost; stopping", self.execution_id)
            self._cancel_inflight()
            return None
        except Exception as exc:
            logger.exception("execution %s: engine error", self.execution_id)
            self._cancel_inflight()
            try:
                self._finish_internal_error(exc)
            except Exception:
                logger.exception("execution %s: could not record the failure", self.execution_id)
            return ExecutionStatus.FAILED
        finally:
            with _runners_lock:
                _runners.pop(str(self.execution_id), None)

    # --- loading ----------------------------------------------------------------------------

    def _load(self, claimed: ClaimedRun) -> None:
        self.owner_id = claimed.owner_id
        self.exec_inputs = claimed.inputs or {}
        snapshot = claimed.snapshot
        last_seq = claimed.last_seq
        # A queued run has one event (execution.queued); more means an earlier worker ran it
        # and this runner resumes it (a worker that died before its first flush left nothing
        # behind, so starting afresh is right).
        resumed = last_seq > 1
        self.log = EventLog(self.execution_id, last_seq=last_seq)
        self.nodes: dict[str, dict] = {}
        self.types: dict[str, type[Node]] = {}
        self.configs: dict[str, dict] = {}
        self.required: dict[str, set[str]] = {}
        for node in snapshot["nodes"]:
            nid = str(node["id"])
            cls = node_class(node["type"])
            self.nodes[nid] = node
            self.types[nid] = cls
            config = cls.config_with_defaults(node.get("config") or {})
            self.configs[nid] = config
            self.required[nid] = {p.name for p in cls.input_ports(config) if p.required}
        self.in_edges: dict[str, list[dict]] = {nid: [] for nid in self.nodes}
        self.out_edges: dict[str, list[dict]] = {nid: [] for nid in self.nodes}
        for edge in snapshot["edges"]:
            self.in_edges[str(edge["target"])].append(edge)
            self.out_edges[str(edge["source"])].append(edge)
        self.remaining = {nid: len(edges) for nid, edges in self.in_edges.items()}
        self.node_inputs: dict[str, dict] = {nid: {} for nid in self.nodes}
        self.dead_ports: dict[str, set[str]] = {nid: set() for nid in self.nodes}
        self.status: dict[str, str] = {}
        self.outputs: dict[str, dict] = {}
        self.runs: dict[str, RunState] = {}
        # Cacheable nodes that missed the cache in this run (see _cache_lookup).
        self.missed: set[str] = set()
        self.existing: dict[str, RunState] = {}
        if resumed:
            for row in NodeRun.objects.filter(execution_id=self.execution_id):
                run = RunState.from_row(row)
                self.existing[str(run.node_id)] = run
                self.runs[str(run.node_id)] = run
        self._new_runs: list[RunState] = []
        self._dirty: dict[str, RunState] = {}
        self._cache_rows: list[tuple] = []
        self.ready: deque[str] = deque(nid for nid, n in self.remaining.items() if n == 0)
        self.io_waiting: deque[str] = deque()
        self.ready_at: dict[str, Any] = {}  # when a slow node started waiting for a slot
        self.inflight: dict[str, tuple[NodeContext, float | None]] = {}
        self.stop: tuple[str, str | None, str] | None = None  # (kind, node id, message)
        self.resumed = resumed
        if not resumed:
            self.log.add("execution.started", {"status": ExecutionStatus.RUNNING})
        for nid, run in self.existing.items():
            if run.status == NodeRunStatus.FAILED and self.stop is None and nid in self.nodes:
                # The failure was written before the worker died: the run ends failed.
                node = self.nodes[nid]
                label = node.get("label") or node["type"]
                self.status[nid] = NodeRunStatus.FAILED
                self.stop = (
                    "failure",
                    nid,
                    f"Node '{label}' ({node['type']}, {nid}) failed: {run.error}",
                )
        if claimed.cancel_requested:
            # Cancelled while its worker was gone (or before the claim): end it at once.
            self.cancel_event.set()
            if self.stop is None:
                self.stop = ("cancel", None, "Cancelled.")

    # --- main loop --------------------------------------------------------------------------

    def _main(self) -> str:
        now = time.monotonic()
        self.exec_deadline = now + settings.WORKFLOW_EXECUTION_TIMEOUT
        self.last_flush = now
        self.last_cancel_poll = now
        self.max_parallel = max(1, settings.WORKFLOW_MAX_PARALLEL_NODES)
        # No flush here: execution.started leaves with the first batch (at most FLUSH_INTERVAL
        # later, or before the first slow node starts); a tiny run commits once.
        while self.stop is None:
            self._advance()
            if self.stop is not None:
                break
            if not (self.ready or self.io_waiting or self.inflight):
                break
            if self._pending_writes():
                self._flush()
            try:
                item = self.results.get(timeout=self._wait_time())
            except queue.Empty:
                item = None
            if item is not None:
                self._on_result(item)
            self._tick()
        return self._finish()

    def _wait_time(self) -> float:
        now = time.monotonic()
        wait = min(CANCEL_POLL_INTERVAL, settings.WORKFLOW_HEARTBEAT_INTERVAL)
        wait = min(wait, self.exec_deadline - now)
        for ctx, deadline in self.inflight.values():
            if deadline is not None:
                wait = min(wait, deadline - now)
            if ctx.tokens is not None and ctx.tokens.holding:
                wait = min(wait, ctx.tokens.interval)
        return max(0.001, wait)

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
                    item = self.results.get_nowait()
                except queue.Empty:
                    break
                self._on_result(item)
                progressed = True

    def _tick(self) -> None:
        now = time.monotonic()
        if self.cancel_event.is_set() and self.stop is None:
            self.stop = ("cancel", None, "Cancelled.")
        if now - self.last_cancel_poll >= CANCEL_POLL_INTERVAL:
            self.last_cancel_poll = now
            flag = Execution.objects.filter(pk=self.execution_id).values_list(
                "cancel_requested", flat=True
            )
            if flag and flag[0] and self.stop is None:
                self.cancel_event.set()
                self.stop = ("cancel", None, "Cancelled.")
        if now >= self.exec_deadline and self.stop is None:
            limit = settings.WORKFLOW_EXECUTION_TIMEOUT
            self.stop = ("timeout", None, f"The execution timed out after {limit:g} s.")
        for nid, (ctx, deadline) in list(self.inflight.items()):
            if ctx.tokens is not None:
                ctx.tokens.flush_if_due()
            if deadline is not None and now >= deadline and self.stop is None:
                ctx.cancel()
                seconds = self._node_timeout(nid)
                self._fail_node(nid, f"timed out after {seconds:g} s", code="timeout")
        since = now - self.last_flush
        due = since >= FLUSH_INTERVAL and self._pending_writes()
        if due or since >= settings.WORKFLOW_HEARTBEAT_INTERVAL:
            self._flush()

    # --- nodes ------------------------------------------------------------------------------

    def _node_timeout(self, nid: str) -> float:
        limit = settings.WORKFLOW_NODE_TIMEOUT
        own = self.configs[nid].get("timeout_s")
        if isinstance(own, int | float) and own > 0:
            # The node's own timeout bounds the call; the engine allows a little slack so a
            # node reporting its own timeout wins the race with the engine's.
            limit = min(limit, float(own) + 1.0)
        return limit

    def _context(self, nid: str, *, tokens: bool) -> NodeContext:
        node = self.nodes[nid]
        return NodeContext(
            execution_id=self.execution_id,
            owner_id=self.owner_id,
            node_id=nid,
            node_type=node["type"],
            label=node.get("label") or node["type"],
            config=self.configs[nid],
            inputs=dict(self.node_inputs[nid]),
            execution_inputs=self.exec_inputs,
            tokens=TokenStream(self.execution_id, nid) if tokens else None,
        )

    def _node_run(self, nid: str) -> RunState:
        run = self.runs.get(nid)
        if run is None:
            run = RunState(
                id=uuid.uuid4(),
                execution_id=self.execution_id,
                node_id=nid,
                node_type=self.nodes[nid]["type"],
                status=NodeRunStatus.PENDING,
            )
            self.runs[nid] = run
            self._new_runs.append(run)
        elif run.stored:
            self._dirty[nid] = run
        return run

    def _event_data(self, nid: str, status: str, **extra) -> dict[str, Any]:
        data = {"node": nid, "type": self.nodes[nid]["type"], "status": status}
        data.update(extra)
        return data

    def _restore(self, nid: str) -> bool:
        """A node that finished before a recovery: reuse its outputs, emit nothing."""
        run = self.existing.get(nid)
        if run is None or run.status not in (NodeRunStatus.SUCCEEDED, NodeRunStatus.CACHED):
            return False
        self.status[nid] = run.status
        self.outputs[nid] = run.outputs or {}
        self._deliver(nid, self.outputs[nid])
        return True

    def _cache_lookup(self, nid: str, cls, inputs: dict) -> tuple[str, dict | None]:
        config = self.configs[nid]
        if not cls.is_cacheable(config):
            return "", None
        key = cache_key(owner_id=self.owner_id, node_type=cls.type, config=config, inputs=inputs)
        if not cls.blocking and any(
            str(edge["source"]) in self.missed for edge in self.in_edges[nid]
        ):
            # A cheap node fed by a node that just missed the cache is computed without a
            # lookup: the lookup costs more than the work, and a miss upstream almost always
            # means a miss here. Its row is still written, so the next run hits.
            self.missed.add(nid)
            return key, None
        hit = select_json(CACHE_LOOKUP_SQL, (key, adapt_datetime(timezone.now())))
        if hit is None:
            self.missed.add(nid)
        return key, hit

    def _record_cached(self, nid: str, key: str, outputs: dict) -> None:
        now = timezone.now()
        run = self._node_run(nid)
        run.status = NodeRunStatus.CACHED
        run.inputs = self.node_inputs[nid]
        run.outputs = outputs
        run.cache_key = key
        run.started_at = run.started_at or now
        run.finished_at = now
        self.status[nid] = NodeRunStatus.CACHED
        self.outputs[nid] = outputs
        self.log.add("node.cached", self._event_data(nid, "cached", outputs=outputs), ts=now)
        self._deliver(nid, outputs)

    def _run_inline(self, nid: str) -> None:
        cls = self.types[nid]
        inputs = self.node_inputs[nid]
        key, hit = self._cache_lookup(nid, cls, inputs)
        if hit is not None:
            self._record_cached(nid, key, hit)
            return
        now = timezone.now()
        run = self._node_run(nid)
        run.status = NodeRunStatus.RUNNING
        run.inputs = inputs
        run.attempts = (run.attempts or 0) + 1
        run.queued_at = run.started_at = now
        run.cache_key = key
        self.status[nid] = NodeRunStatus.RUNNING
        self.log.add("node.started", self._event_data(nid, "running", attempt=run.attempts), ts=now)
        ctx = self._context(nid, tokens=False)
        try:
            outputs = cls().run(ctx)
            outputs = checked_outputs(outputs)
        except NodeError as exc:
            self._fail_node(nid, exc.message, code=exc.code)
            return
        except Exception as exc:
            logger.exception("node %s (%s) raised", nid, cls.type)
            self._fail_node(nid, f"{type(exc).__name__}: {exc}", code="node_error")
            return
        self._succeed_node(nid, outputs, usage=None, key=key)

    def _succeed_node(self, nid: str, outputs: dict, *, usage, key: str) -> None:
        now = timezone.now()
        run = self._node_run(nid)
        run.status = NodeRunStatus.SUCCEEDED
        run.outputs = outputs
        run.finished_at = now
        if usage is not None:
            run.usage = usage
        self.status[nid] = NodeRunStatus.SUCCEEDED
        self.outputs[nid] = outputs
        self.log.add(
            "node.completed",
            self._event_data(nid, "succeeded", outputs=outputs, attempt=run.attempts),
            ts=now,
        )
        if key:
            self._cache_rows.append(
                (
                    key,
                    self.owner_id,
                    self.nodes[nid]["type"],
                    outputs,
                    _json_size(outputs),
                    now,
                    now + timedelta(seconds=settings.WORKFLOW_CACHE_TTL),
                )
            )
        self._deliver(nid, outputs)

    def _fail_node(self, nid: str, message: str, *, code: str) -> None:
        message = message.replace("\x00", "\ufffd")
        now = timezone.now()
        run = self._node_run(nid)
        run.status = NodeRunStatus.FAILED
        run.error = message
        run.finished_at = now
        run.started_at = run.started_at or now
        self.status[nid] = NodeRunStatus.FAILED
        self.inflight.pop(nid, None)
        self.log.add(
            "node.failed",
            self._event_data(nid, "failed", error=message, attempt=run.attempts),
            ts=now,
        )
        if self.stop is None:
            node = self.nodes[nid]
            label = node.get("label") or node["type"]
            self.stop = (
                "failure",
                nid,
                f"Node '{label}' ({node['type']}, {nid}) failed: {message}",
            )

    def _deliver(self, nid: str, outputs: dict) -> None:
        """Pass outputs along edges; a port the node did not produce kills its edges."""
        decided: list[str] = []
        for edge in self.out_edges[nid]:
            target = str(edge["target"])
            if edge["source_port"] in outputs:
                self.node_inputs[target][edge["target_port"]] = outputs[edge["source_port"]]
            else:
                self.dead_ports[target].add(edge["target_port"])
            self.remaining[target] -= 1
            if self.remaining[target] == 0:
                decided.append(target)
        self._decide(decided)

    def _decide(self, nids: list[str]) -> None:
        """Nodes whose every input edge resolved: ready, or skipped (then their edges die).

        Skipped: a required input port whose edge is dead (the branch a condition did not
        take), or every input edge dead (only reachable through the skipped branch).
        """
        stack = list(nids)
        while stack:
            nid = stack.pop()
            dead = self.dead_ports[nid]
            edges = self.in_edges[nid]
            skip = bool(dead & self.required[nid]) or (
                edges and all(e["target_port"] in dead for e in edges)
            )
            if not skip:
                self.ready.append(nid)
                continue
            existing = self.existing.get(nid)
            if existing is None or existing.status != NodeRunStatus.SKIPPED:
                now = timezone.now()
                run = self._node_run(nid)
                run.status = NodeRunStatus.SKIPPED
                run.finished_at = now
                self.log.add("node.skipped", self._event_data(nid, "skipped"), ts=now)
            self.status[nid] = NodeRunStatus.SKIPPED
            for edge in self.out_edges[nid]:
                target = str(edge["target"])
                self.dead_ports[target].add(edge["target_port"])
                self.remaining[target] -= 1
                if self.remaining[target] == 0:
                    stack.append(target)

    # --- slow nodes in the pool -------------------------------------------------------------

    def _dispatch(self, nid: str) -> None:
        cls = self.types[nid]
        inputs = self.node_inputs[nid]
        key, hit = self._cache_lookup(nid, cls, inputs)
        if hit is not None:
            self._record_cached(nid, key, hit)
            return
        existing = self.existing.get(nid)
        now = timezone.now()
        run = self._node_run(nid)
        if existing is not None and existing.status == NodeRunStatus.RUNNING:
            # In flight when its worker died: repeat it only when that is safe.
            if not cls.is_safe_to_repeat(self.configs[nid]):
                self._fail_node(
                    nid,
                    "interrupted: the worker running it stopped mid-call, and repeating a "
                    "non-GET HTTP request is not safe",
                    code="interrupted",
                )
                return
            run.attempts = (run.attempts or 1) + 1
            self.log.add(
                "node.retrying",
                self._event_data(
                    nid, "running", attempt=run.attempts, error="interrupted: worker lost"
                ),
                ts=now,
            )
        else:
            run.attempts = (run.attempts or 0) + 1
            run.started_at = now
            run.queued_at = self.ready_at.pop(nid, now)
            self.log.add(
                "node.started", self._event_data(nid, "running", attempt=run.attempts), ts=now
            )
        run.status = NodeRunStatus.RUNNING
        run.inputs = inputs
        run.cache_key = key
        self.status[nid] = NodeRunStatus.RUNNING
        # Written before the node runs: its tokens must not overtake node.started.
        self._flush()
        ctx = self._context(nid, tokens=True)
        ctx.attempt = run.attempts
        ctx.on_retry = self._retry_hook
        timeout = self._node_timeout(nid)
        ctx.deadline = time.monotonic() + timeout
        self.inflight[nid] = (ctx, ctx.deadline)
        _get_node_pool().submit(self._execute, ctx, cls, key)

    def _execute(self, ctx: NodeContext, cls, key: str) -> None:
        """Runs in a pool thread; reports back through ``self.results``."""
        try:
            outputs = cls().run(ctx)
            outputs = checked_outputs(outputs)
            if ctx.tokens is not None:
                ctx.tokens.flush()
            self.results.put(("done", ctx, (outputs, key)))
        except NodeCancelled:
            self.results.put(("cancelled", ctx, None))
        except NodeError as exc:
            self.results.put(("error", ctx, (exc.message, exc.code)))
        except Exception as exc:
            if ctx.cancelled:
                self.results.put(("cancelled", ctx, None))
            else:
                logger.exception("node %s (%s) raised", ctx.node_id, ctx.node_type)
                self.results.put(("error", ctx, (f"{type(exc).__name__}: {exc}", "node_error")))
        finally:
            release_connection()

    def _retry_hook(self, ctx: NodeContext, error: str) -> None:
        # Called from the node thread: the coordinator writes the event, then lets it go on.
        done = threading.Event()
        self.results.put(("retrying", ctx, (error, done)))
        done.wait(timeout=5.0)

    def _on_result(self, item) -> None:
        kind, ctx, payload = item
        if kind == "wake":
            return
        nid = ctx.node_id
        current = self.inflight.get(nid)
        if current is None or current[0] is not ctx:
            if kind == "retrying":
                payload[1].set()
            return  # a node already failed by timeout, or from an earlier attempt
        if kind == "retrying":
            error, done = payload
            run = self._node_run(nid)
            run.attempts = ctx.attempt
            self.log.add(
                "node.retrying",
                self._event_data(nid, "running", attempt=ctx.attempt, error=error),
            )
            self._flush()
            done.set()
            return
        del self.inflight[nid]
        if kind == "done":
            outputs, key = payload
            self._node_run(nid).usage = ctx.usage
            self._succeed_node(nid, outputs, usage=ctx.usage, key=key)
        elif kind == "error":
            message, code = payload
            if ctx.usage is not None:
                self._node_run(nid).usage = ctx.usage
            self._fail_node(nid, message, code=code)
        elif kind == "cancelled":
            self._cancel_node(nid)

    def _cancel_node(self, nid: str) -> None:
        now = timezone.now()
        run = self._node_run(nid)
        run.status = NodeRunStatus.CANCELLED
        run.finished_at = now
        self.status[nid] = NodeRunStatus.CANCELLED

    def _cancel_inflight(self) -> None:
        for ctx, _deadline in list(getattr(self, "inflight", {}).values()):
            ctx.cancel()

    # --- writing ----------------------------------------------------------------------------

    def _pending_writes(self) -> bool:
        return bool(self.log.pending or self._new_runs or self._dirty or self._cache_rows)

    def _flush(self, final: dict[str, Any] | None = None) -> None:
        """One short transaction: heartbeat (fenced), node runs, events, cache rows."""
        now = timezone.now()
        fields: dict[str, Any] = {"heartbeat_at": now}
        if final:
            fields.update(final)
        with transaction.atomic():
            if not update_owned_execution(self.execution_id, worker=self.worker_id, **fields):
                raise LostOwnership
            if self._new_runs:
                _insert_node_runs(self._new_runs, now)
            for run in self._dirty.values():
                NodeRun.objects.filter(pk=run.id).update(
                    status=run.status,
                    inputs=run.inputs,
                    outputs=run.outputs,
                    error=run.error,
                    attempts=run.attempts,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    usage=run.usage,
                    cache_key=run.cache_key,
                )
            if self._cache_rows:
                insert_rows(
                    NodeOutputCache._meta.db_table,
                    CACHE_COLUMNS,
                    self._cache_rows,
                    # An expired entry for the same key is replaced by the fresh one.
                    upsert_on="key",
                )
            self.log.write()
        self._new_runs = []
        self._dirty = {}
        if self._cache_rows:
            from workflows.services import cache_prune_maybe

            cache_prune_maybe(written=len(self._cache_rows))
        self._cache_rows = []
        self.last_flush = time.monotonic()

    # --- the end ----------------------------------------------------------------------------

    def _finish(self) -> str:
        if self.inflight:
            self._cancel_inflight()
            deadline = time.monotonic() + STOP_GRACE
            while self.inflight and time.monotonic() < deadline:
                try:
                    item = self.results.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    break
                kind, ctx, payload = item
                if kind in ("wake",):
                    continue
                if kind == "retrying":
                    payload[1].set()
                    continue
                current = self.inflight.get(ctx.node_id)
                if current is None or current[0] is not ctx:
                    continue
                del self.inflight[ctx.node_id]
                if ctx.usage is not None:
                    self._node_run(ctx.node_id).usage = ctx.usage
                self._cancel_node(ctx.node_id)
            for nid in list(self.inflight):
                del self.inflight[nid]
                self._cancel_node(nid)
        now = timezone.now()
        # Nodes never reached end cancelled: the run stopped before them. Node runs a previous
        # worker finished keep their state.
        for nid, run in self.existing.items():
            if nid not in self.status and run.status in (
                NodeRunStatus.SUCCEEDED,
                NodeRunStatus.CACHED,
                NodeRunStatus.SKIPPED,
                NodeRunStatus.FAILED,
            ):
                self.status[nid] = run.status
                self.outputs[nid] = run.outputs or {}
        for nid in self.nodes:
            if nid not in self.status or self.status[nid] in (
                NodeRunStatus.PENDING,
                NodeRunStatus.RUNNING,
            ):
                run = self._node_run(nid)
                run.status = NodeRunStatus.CANCELLED
                run.finished_at = now
                self.status[nid] = NodeRunStatus.CANCELLED
        outputs = {}
        for nid, node in self.nodes.items():
            if node["type"] == "output" and self.status.get(nid) in (
                NodeRunStatus.SUCCEEDED,
                NodeRunStatus.CACHED,
            ):
                name = self.configs[nid].get("name") or nid
                outputs[name] = self.outputs[nid].get("value")
        if self.stop is None:
            status, error, event = ExecutionStatus.SUCCEEDED, "", "execution.completed"
        elif self.stop[0] == "cancel":
            status, error, event = ExecutionStatus.CANCELLED, "", "execution.cancelled"
        else:
            status, error, event = ExecutionStatus.FAILED, self.stop[2], "execution.failed"
        data: dict[str, Any] = {"status": status}
        if error:
            data["error"] = error
        if status == ExecutionStatus.SUCCEEDED:
            data["outputs"] = outputs
        self.log.add(event, data, ts=now)
        self._flush(
            final={"status": status, "error": error, "outputs": outputs, "finished_at": now}
        )
        return status

    def _finish_internal_error(self, exc: Exception) -> None:
        """An engine bug or a database failure: fail the run instead of leaving it running."""
        now = timezone.now()
        message = f"Internal error in the workflow engine: {type(exc).__name__}: {exc}"
        with transaction.atomic():
            updated = Execution.objects.filter(
                pk=self.execution_id, worker=self.worker_id, status=ExecutionStatus.RUNNING
            ).update(status=ExecutionStatus.FAILED, error=message, finished_at=now)
            if updated:
                from workflows.events import event_record

                event_record(
                    execution_id=self.execution_id,
                    event="execution.failed",
                    data={"status": ExecutionStatus.FAILED, "error": message},
                )


def release_connection() -> None:
    """End of a task on a pool thread: give a PostgreSQL connection back to the pool.

    SQLite connections stay open for the thread's next task: closing the last connection to
    a WAL database checkpoints and removes the WAL (13 ms measured), and executor threads
    are few and long-lived.
    """
    if connection.vendor == "sqlite":
        if connection.connection is not None and not connection.is_usable():
            connection.close()
        return
    close_old_connections()


def execution_run(execution_id: uuid.UUID | str, *, worker_id: str | None = None) -> str | None:
    """Claim and run one execution in this thread; see ``ExecutionRunner.run``."""
    try:
        return ExecutionRunner(execution_id, worker_id=worker_id).run()
    finally:
        release_connection()
