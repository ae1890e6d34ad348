"""Executions: start, cancel, recover, and the output cache's housekeeping.

Status changes are conditional updates (``filter(status__in=...).update(...)``): of two
writers racing for a transition exactly one changes the row, and only that one writes the
event. While a run is queued these services write its events; once an engine claimed it, the
engine is the only writer (see ``workflows.engine``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from canvas.core.exceptions import ApplicationError
from graphs.selectors import graph_nodes_and_edges_at_version
from graphs.validation import validate_document
from workflows.events import EventLog, event_record
from workflows.models import (
    ACTIVE_STATUSES,
    Execution,
    ExecutionStatus,
    NodeOutputCache,
)

logger = logging.getLogger(__name__)


def graph_snapshot(*, graph) -> dict[str, Any]:
    """The graph document an execution runs: nodes, edges and the version they had (read
    without a lock: validating a large graph inside a write transaction would hold SQLite's
    one write lock)."""
    nodes, edges, version = graph_nodes_and_edges_at_version(graph=graph)
    graph.version = version
    return {"graph": str(graph.id), "version": version, "nodes": nodes, "edges": edges}


def _inputs_errors(*, snapshot: dict, inputs: Any) -> dict[str, list]:
    if not isinstance(inputs, dict):
        return {"inputs": [{"field": "inputs", "message": "inputs must be a JSON object."}]}
    declared: dict[str, dict] = {}
    for node in snapshot["nodes"]:
        if node["type"] == "input":
            declared[(node.get("config") or {}).get("name")] = node.get("config") or {}
    errors = []
    for name in inputs:
        if name not in declared:
            known = ", ".join(sorted(str(n) for n in declared)) or "none"
            errors.append(
                {
                    "field": f"inputs.{name}",
                    "message": f"The graph has no input named {name!r} (its inputs: {known}).",
                }
            )
    for name, config in declared.items():
        if name not in inputs and config.get("default") is None:
            errors.append(
                {
                    "field": f"inputs.{name}",
                    "message": "This input is required: the input node has no default.",
                }
            )
    return {"inputs": errors} if errors else {}


def execution_create(
    *, user, graph, inputs: dict[str, Any] | None = None, dispatch: bool = True
) -> Execution:
    """Validate the graph and the inputs, snapshot the graph and queue a run of it.

    Raises ``ApplicationError`` with the validate error map for an incomplete or invalid
    graph, or with ``{"inputs": [...]}`` for inputs that do not match the input nodes. The run
    is dispatched to the configured executor when the transaction commits (``dispatch=False``:
    the caller runs it, as ``manage.py run_workflow`` does in the foreground).
    """
    inputs = {} if inputs is None else inputs
    snapshot = graph_snapshot(graph=graph)
    result = validate_document(snapshot["nodes"], snapshot["edges"])
    if not result["valid"]:
        raise ApplicationError(
            "The graph cannot run until these problems are fixed.",
            errors=result["errors"],
            code="invalid_graph",
        )
    errors = _inputs_errors(snapshot=snapshot, inputs=inputs)
    if errors:
        raise ApplicationError("The inputs do not match the graph.", errors=errors)
    with transaction.atomic():
        execution = Execution(
            owner=user,
            graph=graph,
            graph_version=graph.version,
            snapshot=snapshot,
            inputs=inputs,
            status=ExecutionStatus.QUEUED,
            queued_at=timezone.now(),
        )
        # owner and graph are resolved objects; checking them again would cost two queries.
        execution.full_clean(
            exclude=["owner", "graph", "snapshot", "inputs", "outputs"], validate_unique=False
        )
        execution.save(force_insert=True)
        # The first event of a new run: seq 1, written like the engine writes its batches.
        log = EventLog(execution.id, last_seq=0)
        log.add("execution.queued", {"status": ExecutionStatus.QUEUED})
        log.write()
        if dispatch:
            transaction.on_commit(lambda: execution_dispatch(execution_id=execution.id))
    return execution


def execution_dispatch(*, execution_id: uuid.UUID) -> None:
    """Hand a queued run to the configured executor (a wake-up: the claim decides)."""
    from workflows.executors import get_executor

    get_executor().dispatch(execution_id)


def execution_cancel(*, execution: Execution) -> Execution:
    """Cancel a run; idempotent. A queued run ends ``cancelled`` here; a running one is
    flagged and its engine stops it (interrupting streams) within a second."""
    now = timezone.now()
    with transaction.atomic():
        flagged = Execution.objects.filter(pk=execution.pk, status__in=ACTIVE_STATUSES).update(
            cancel_requested=True
        )
        if flagged:
            won = Execution.objects.filter(pk=execution.pk, status=ExecutionStatus.QUEUED).update(
                status=ExecutionStatus.CANCELLED, finished_at=now
            )
            if won:
                event_record(
                    execution_id=execution.pk,
                    event="execution.cancelled",
                    data={"status": ExecutionStatus.CANCELLED},
                )
            else:
                execution_id = execution.pk

                def wake():
                    from workflows.engine import notify_cancel

                    notify_cancel(execution_id)

                transaction.on_commit(wake)
    execution.refresh_from_db()
    return execution


def execution_cancel_for_user(*, user, execution_id) -> Execution:
    from workflows.selectors import execution_get_for_user

    return execution_cancel(execution=execution_get_for_user(user=user, execution_id=execution_id))


def executions_recover(*, dispatch: bool = True) -> dict[str, list[str]]:
    """Find runs that need a worker and dispatch them again.

    - ``running`` with a heartbeat older than ``WORKFLOW_STALE_AFTER``: its worker died; the
      next claimer resumes it after its last finished node.
    - ``queued`` for longer than ``WORKFLOW_STALE_AFTER``: its dispatch was probably lost
      (channels-redis drops messages past their expiry, SIGKILL loses a read message).

    Dispatching is a wake-up; the conditional claim makes a duplicate harmless.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKFLOW_STALE_AFTER)
    stale = list(
        Execution.objects.filter(status=ExecutionStatus.RUNNING, heartbeat_at__lt=cutoff)
        .values_list("id", flat=True)
        .order_by("heartbeat_at")[:500]
    )
    stale += list(
        Execution.objects.filter(
            status=ExecutionStatus.RUNNING, heartbeat_at__isnull=True
        ).values_list("id", flat=True)[:500]
    )
    lost = list(
        Execution.objects.filter(status=ExecutionStatus.QUEUED, queued_at__lt=cutoff)
        .values_list("id", flat=True)
        .order_by("queued_at")[:500]
    )
    if dispatch:
        for execution_id in [*stale, *lost]:
            try:
                execution_dispatch(execution_id=execution_id)
            except Exception:
                logger.exception("could not dispatch execution %s", execution_id)
    if stale or lost:
        logger.info("recovery: %d stale running, %d queued re-dispatched", len(stale), len(lost))
    return {"stale": [str(i) for i in stale], "queued": [str(i) for i in lost]}


# --- output cache housekeeping -------------------------------------------------------------

_writes_since_prune = 0
_prune_lock = threading.Lock()
PRUNE_EVERY = 200


def cache_prune_maybe(*, written: int) -> None:
    """Prune the cache after every ``PRUNE_EVERY`` rows this process wrote."""
    global _writes_since_prune
    with _prune_lock:
        _writes_since_prune += written
        if _writes_since_prune < PRUNE_EVERY:
            return
        _writes_since_prune = 0
    cache_prune()


def cache_prune() -> int:
    """Delete expired entries, then the oldest beyond ``WORKFLOW_CACHE_MAX_ENTRIES``."""
    now = timezone.now()
    deleted, _ = NodeOutputCache.objects.filter(expires_at__lte=now).delete()
    limit = settings.WORKFLOW_CACHE_MAX_ENTRIES
    beyond = list(
        NodeOutputCache.objects.order_by("-created_at").values_list("created_at", flat=True)[
            limit : limit + 1
        ]
    )
    if beyond:
        more, _ = NodeOutputCache.objects.filter(created_at__lte=beyond[0]).delete()
        deleted += more
    return deleted


def cache_clear(*, user) -> int:
    deleted, _ = NodeOutputCache.objects.filter(owner=user).delete()
    return deleted
