"""Executions: start and cancel (recovery: ``workflows/recovery.py``).

Status changes are conditional updates (``filter(status__in=...).update(...)``): of two
writers racing for a transition exactly one changes the row, and only that one writes the
event. While a run is queued these services write its events; once an engine claimed it, the
engine is the only writer (see ``workflows.engine``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from typing import Any

from cachetools import LRUCache
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from canvas.core import events
from canvas.core.exceptions import ApplicationError
from canvas.core.idempotency import IdempotencyRecord
from graphs.selectors import graph_nodes_and_edges_at_version
from graphs.validation import validate_document
from workflows.engine import notify_cancel
from workflows.events import EventLog, event_record
from workflows.executors import get_executor
from workflows.lease import ClaimedRun
from workflows.models import ACTIVE_STATUSES, Execution, ExecutionStatus
from workflows.rowwriter import DATETIME, JSON, PLAIN, UUID, JSONText, Writes, dumps
from workflows.selectors import execution_get_for_user

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


def _limits() -> tuple[int, int, int]:
    return settings.GRAPH_MAX_NODES, settings.GRAPH_MAX_EDGES, settings.GRAPH_MAX_CONFIG_BYTES


# Digests of documents that validated, least recently used first out: a graph whose
# document is unchanged under a new version (a rename) is not validated again. Validation is a
# pure function of the document and the limits in the digest, and was half of a 200-node
# chain's POST (cProfile); the digest costs a JSON encoding of the document.
VALID_DOCUMENTS_KEPT = 256
_valid_documents: LRUCache[bytes, bool] = LRUCache(maxsize=VALID_DOCUMENTS_KEPT)
_valid_documents_lock = threading.Lock()


def _document_validation(snapshot: dict[str, Any]) -> dict:
    """``validate_document`` of the snapshot, skipped for a document that validated before."""
    encoded = json.dumps(
        [snapshot["nodes"], snapshot["edges"], _limits()],
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    digest = hashlib.blake2b(encoded.encode(), digest_size=16).digest()
    with _valid_documents_lock:
        if _valid_documents.get(digest):
            return {"valid": True, "errors": {}}
    result = validate_document(snapshot["nodes"], snapshot["edges"])
    if result["valid"]:
        with _valid_documents_lock:
            _valid_documents[digest] = True
    return result


# Runnable documents (a snapshot and its JSON text) by graph id, version and the limits they
# were validated under. A graph's version is one content: every change of the graph bumps it,
# through any path (``graphs.models.Graph``; the realtime graph topics and a run's
# ``graph_version`` rest on it too). So a run of an unchanged graph reads the graph's row and
# nothing else: not its nodes and edges, nor validates or encodes them again (8 clients'
# 3-node runs/s +13 %, and two round trips fewer on PostgreSQL: docs/benchmarks.md). Least
# recently used first out, at most this many characters of JSON. Shared by the runs: read only.
RUNNABLE_DOCUMENTS_CHARS = 2_000_000
_runnable_documents: LRUCache[tuple, tuple[dict, JSONText]] = LRUCache(
    maxsize=RUNNABLE_DOCUMENTS_CHARS, getsizeof=lambda document: len(document[1])
)
_runnable_documents_lock = threading.Lock()


def runnable_document(graph) -> tuple[dict[str, Any], JSONText]:
    """The snapshot a run of ``graph`` (as read, with its ``version``) runs and its JSON text;
    ``ApplicationError`` with the validate error map for an incomplete or invalid graph."""
    limits = _limits()
    with _runnable_documents_lock:
        document = _runnable_documents.get((graph.pk, graph.version, limits))
    if document is not None:
        return document
    snapshot = graph_snapshot(graph=graph)  # at the version its rows carry: graph.version
    result = _document_validation(snapshot)
    if not result["valid"]:
        raise ApplicationError(
            "The graph cannot run until these problems are fixed.",
            errors=result["errors"],
            code="invalid_graph",
        )
    document = snapshot, JSONText(dumps(snapshot))
    if len(document[1]) <= RUNNABLE_DOCUMENTS_CHARS // 4:
        with _runnable_documents_lock:
            _runnable_documents[(graph.pk, graph.version, limits)] = document
    return document


# A new run's row, written as the engine writes its rows (workflows/rowwriter.py):
# ``full_clean`` and ``Model.save`` spent ~0.4 ms preparing these values (~20 µs a datetime)
# and compiling the statement, a tenth of the POST's CPU. Every value is the server's own.
EXECUTION_COLUMNS = (
    ("id", UUID),
    ("created_at", DATETIME),
    ("updated_at", DATETIME),
    ("owner_id", PLAIN),
    ("graph_id", UUID),
    ("graph_version", PLAIN),
    ("snapshot", JSON),
    ("inputs", JSON),
    ("outputs", JSON),
    ("status", PLAIN),
    ("error", PLAIN),
    ("queued_at", DATETIME),
    ("started_at", DATETIME),
    ("finished_at", DATETIME),
    ("heartbeat_at", DATETIME),
    ("worker", PLAIN),
    ("cancel_requested", PLAIN),
)


def _execution_insert(execution: Execution, writes: Writes, **encoded: JSONText) -> None:
    """INSERT ``execution`` (a new instance) with ``writes``, as ``save(force_insert=True)``
    would, without the ORM's per-field preparation (``encoded``: JSON columns' values as
    text); the instance is then as a saved one."""
    writes.insert(
        Execution._meta.db_table,
        EXECUTION_COLUMNS,
        [
            tuple(
                encoded[name] if name in encoded else getattr(execution, name)
                for name, _kind in EXECUTION_COLUMNS
            )
        ],
    )
    execution._state.adding = False
    execution._state.db = writes.conn.alias


def execution_create(
    *,
    user,
    graph,
    inputs: dict[str, Any] | None = None,
    dispatch: bool = True,
    idempotency: IdempotencyRecord | None = None,
) -> Execution:
    """Validate the graph and the inputs, snapshot the graph and queue a run of it.

    Raises ``ApplicationError`` with the validate error map for an incomplete or invalid
    graph, or with ``{"inputs": [...]}`` for inputs that do not match the input nodes. The run
    is dispatched to the configured executor when the transaction commits (``dispatch=False``:
    the caller runs it, as ``manage.py run_workflow`` does in the foreground). The request's
    ``idempotency`` key, if any, is linked to the run in the same transaction.
    """
    inputs = {} if inputs is None else inputs
    snapshot, snapshot_text = runnable_document(graph)
    errors = _inputs_errors(snapshot=snapshot, inputs=inputs)
    if errors:
        raise ApplicationError("The inputs do not match the graph.", errors=errors)
    now = timezone.now()
    execution = Execution(
        owner=user,
        graph=graph,
        graph_version=graph.version,
        snapshot=snapshot,
        inputs=inputs,
        status=ExecutionStatus.QUEUED,
        queued_at=now,
        created_at=now,
        updated_at=now,
    )
    # The row and its first event (seq 1, written like the engine writes its batches) in one
    # statement on PostgreSQL (rowwriter.Writes); the idempotency key joins their transaction.
    writes = Writes()
    inputs_text = JSONText(dumps(inputs))
    _execution_insert(execution, writes, snapshot=snapshot_text, inputs=inputs_text)
    log = EventLog(execution.id, last_seq=0)
    log.add(events.EXECUTION_QUEUED, {"status": ExecutionStatus.QUEUED})
    log.write(writes)
    if dispatch:
        # The run as stored, so that an executor in this process need not read it back.
        queued = ClaimedRun(
            owner_id=user.pk,
            inputs=json.loads(inputs_text),
            raw_snapshot=snapshot_text,
            cancel_requested=False,
            last_seq=log.last_seq,
        )
        writes.on_commit(lambda: execution_dispatch(execution_id=execution.id, queued=queued))
    if idempotency is None:
        writes.run()
    else:
        with transaction.atomic():
            writes.run()
            idempotency.link(execution.id)
    return execution


def execution_dispatch(*, execution_id: uuid.UUID, queued: ClaimedRun | None = None) -> bool:
    """Hand a queued run to the configured executor (a wake-up: the claim decides). False
    when it could not be sent: the run stays queued for the recovery sweep. ``queued``: the
    run as its creator stored it (``workflows.engine.ClaimedRunner.run``)."""
    return get_executor().dispatch(execution_id, queued=queued)


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
                    event=events.EXECUTION_CANCELLED,
                    data={"status": ExecutionStatus.CANCELLED},
                )
            else:
                execution_id = execution.pk
                transaction.on_commit(lambda: notify_cancel(execution_id))
    execution.refresh_from_db()
    return execution


def execution_cancel_for_user(*, user, execution_id) -> Execution:
    return execution_cancel(execution=execution_get_for_user(user=user, execution_id=execution_id))
