"""Reads of executions, always through the user who asks (another user's run is a 404)."""

from __future__ import annotations

import uuid

from django.db.models import F, Prefetch, QuerySet

from canvas.core.exceptions import NotFoundError
from canvas.core.ids import parse_id
from workflows.models import Execution, ExecutionEvent, NodeRun

EVENTS_PAGE_SIZE = 1000


def execution_list(*, user, graph_id=None, status: str | None = None) -> QuerySet[Execution]:
    """The user's executions, newest first, without node runs (use ``execution_get_for_user``)."""
    qs = Execution.objects.filter(owner=user).defer("snapshot").order_by("-queued_at", "id")
    if graph_id is not None:
        qs = qs.filter(graph_id=graph_id)
    if status:
        qs = qs.filter(status=status)
    return qs


def execution_get_for_user(*, user, execution_id, with_node_runs: bool = False) -> Execution:
    execution_id = parse_id(execution_id, what="execution")
    qs = Execution.objects.filter(owner=user, pk=execution_id)
    if not with_node_runs:
        # The snapshot (the whole graph) only names the node runs (their labels).
        qs = qs.defer("snapshot")
    else:
        qs = qs.prefetch_related(
            # Run order: by start (nodes that never started last, on every database).
            Prefetch(
                "node_runs",
                queryset=NodeRun.objects.order_by(
                    F("started_at").asc(nulls_last=True), "created_at", "id"
                ),
            )
        )
    execution = qs.first()
    if execution is None:
        raise NotFoundError("Execution not found.")
    return execution


def execution_events(*, execution: Execution, after: int = 0) -> QuerySet[ExecutionEvent]:
    """Persisted events with ``seq > after`` (``workflows.views`` pages them by ``seq``)."""
    return ExecutionEvent.objects.filter(execution=execution, seq__gt=after)


def execution_node_statuses(*, execution_id: uuid.UUID) -> dict[str, str]:
    """``{node id: status}`` of the nodes that have a run (the realtime snapshot)."""
    return {
        str(node_id): status
        for node_id, status in NodeRun.objects.filter(execution_id=execution_id).values_list(
            "node_id", "status"
        )
    }
