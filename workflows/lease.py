"""Who runs an execution: the claim that takes it, and the fenced writes of its owner.

Statements on the execution row, written in SQL because they run for every execution and
the ORM's query compilation costs more than the database's work on them (≈ 0.3 ms against
0.03 ms per statement on SQLite, measured by ``bench/engine.py``'s small runs):

- ``claim_execution``: one ``UPDATE … RETURNING`` takes a queued run (or a running one whose
  heartbeat went stale) and reads what the engine needs to start it, its last event ``seq``
  included, in one round trip. Of two claimers exactly one changes the row.
- ``read_queued`` and ``claim_queued``: the claim of a fresh run folded into its first write.
  The engine reads a queued run (a plain ``SELECT``, no write), runs its first cheap nodes in
  memory, and claims it in the transaction of its first flush, with a conditional ``UPDATE``
  that also writes that flush's fields (the run's end, for a small run): one commit per small
  run instead of two. The row is matched only while it is still queued, uncancelled and has the
  events read, so of two claimers exactly one changes it, as with ``claim_execution``; the
  other rolls its flush back and has written nothing.
- ``update_owned_execution``: changes the row only while ``worker`` is this runner and the
  run is ``running``; no row changed means the run was taken over or ended elsewhere.

``run_flags`` is how the process's cancel watcher (``integrations.cancellation``) reads the
``cancel_requested`` flag a cancel from any process sets on the runs this process owns.

Values go through the model fields' own database preparation, so each backend stores what the
ORM would.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from integrations.cancellation import CancelFlags
from workflows.models import Execution, ExecutionEvent, ExecutionStatus


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    owner_id: int
    inputs: dict[str, Any]
    snapshot: dict[str, Any]
    cancel_requested: bool
    last_seq: int


def _column(name: str) -> str:
    return connection.ops.quote_name(Execution._meta.get_field(name).column)


def _prep(name: str, value: Any) -> Any:
    return Execution._meta.get_field(name).get_db_prep_save(value, connection)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def claim_execution(
    execution_id: uuid.UUID, *, worker: str, now: datetime, stale: datetime
) -> ClaimedRun | None:
    qn = connection.ops.quote_name
    table = qn(Execution._meta.db_table)
    events = qn(ExecutionEvent._meta.db_table)
    status, heartbeat = _column("status"), _column("heartbeat_at")
    # Identifiers come from the models, never from input; values are parameters.
    update = (
        f"UPDATE {table} SET {status} = %s, {_column('worker')} = %s, {heartbeat} = %s, "  # noqa: S608
        f"{_column('started_at')} = COALESCE({_column('started_at')}, %s) "
        f"WHERE {_column('id')} = %s AND ({status} = %s OR ({status} = %s AND "
        f"({heartbeat} IS NULL OR {heartbeat} < %s)))"
    )
    params = [
        ExecutionStatus.RUNNING.value,
        worker,
        _prep("heartbeat_at", now),
        _prep("started_at", now),
        _prep("id", execution_id),
        ExecutionStatus.QUEUED.value,
        ExecutionStatus.RUNNING.value,
        _prep("heartbeat_at", stale),
    ]
    event_meta = ExecutionEvent._meta
    seq, of_execution = (qn(event_meta.get_field(name).column) for name in ("seq", "execution"))
    last_seq = (
        f"SELECT MAX({seq}) FROM {events} "  # noqa: S608
        f"WHERE {of_execution} = {table}.{_column('id')}"
    )
    columns = (
        f"{_column('owner')}, {_column('inputs')}, {_column('snapshot')}, "
        f"{_column('cancel_requested')}, ({last_seq})"
    )
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:  # SQLite ≥ 3.35, PostgreSQL
            cursor.execute(f"{update} RETURNING {columns}", params)
            row = cursor.fetchone()
        else:
            cursor.execute(update, params)
            row = None
            if cursor.rowcount == 1:
                cursor.execute(
                    f"SELECT {columns} FROM {table} WHERE {_column('id')} = %s",  # noqa: S608
                    [_prep("id", execution_id)],
                )
                row = cursor.fetchone()
    if row is None:
        return None
    owner_id, inputs, snapshot, cancel_requested, last_seq = row
    return ClaimedRun(
        owner_id=owner_id,
        inputs=_json(inputs),
        snapshot=_json(snapshot),
        cancel_requested=bool(cancel_requested),
        last_seq=last_seq or 0,
    )


def read_queued(execution_id: uuid.UUID) -> ClaimedRun | None:
    """What ``claim_execution`` returns for a run that is queued, without claiming it (a read:
    no lock, no commit); None when the run is not queued."""
    qn = connection.ops.quote_name
    table = qn(Execution._meta.db_table)
    events = qn(ExecutionEvent._meta.db_table)
    event_meta = ExecutionEvent._meta
    seq, of_execution = (qn(event_meta.get_field(name).column) for name in ("seq", "execution"))
    sql = (
        f"SELECT {_column('owner')}, {_column('inputs')}, {_column('snapshot')}, "  # noqa: S608
        f"{_column('cancel_requested')}, "
        f"(SELECT MAX({seq}) FROM {events} WHERE {of_execution} = {table}.{_column('id')}) "
        f"FROM {table} WHERE {_column('id')} = %s AND {_column('status')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [_prep("id", execution_id), ExecutionStatus.QUEUED.value])
        row = cursor.fetchone()
    if row is None:
        return None
    owner_id, inputs, snapshot, cancel_requested, last_seq = row
    return ClaimedRun(
        owner_id=owner_id,
        inputs=_json(inputs),
        snapshot=_json(snapshot),
        cancel_requested=bool(cancel_requested),
        last_seq=last_seq or 0,
    )


def claim_queued(
    execution_id: uuid.UUID, *, worker: str, started: datetime, last_seq: int, **fields: Any
) -> bool:
    """Claim a run ``read_queued`` read and set ``fields`` on it (``status`` defaults to
    ``running``), if it is still queued, not cancelled and its last event is ``last_seq``;
    True when it did. Call inside the transaction that writes what the claimer did meanwhile.
    """
    qn = connection.ops.quote_name
    table = qn(Execution._meta.db_table)
    events = qn(ExecutionEvent._meta.db_table)
    event_meta = ExecutionEvent._meta
    seq, of_execution = (qn(event_meta.get_field(name).column) for name in ("seq", "execution"))
    fields = {"status": ExecutionStatus.RUNNING.value, **fields}
    assignments = ", ".join(f"{_column(name)} = %s" for name in fields)
    started_at = _column("started_at")
    sql = (
        f"UPDATE {table} SET {assignments}, {_column('worker')} = %s, "  # noqa: S608
        f"{started_at} = COALESCE({started_at}, %s) "
        f"WHERE {_column('id')} = %s AND {_column('status')} = %s "
        f"AND {_column('cancel_requested')} = %s AND (SELECT MAX({seq}) FROM {events} "
        f"WHERE {of_execution} = {table}.{_column('id')}) = %s"
    )
    params = [_prep(name, value) for name, value in fields.items()]
    params += [
        worker,
        _prep("started_at", started),
        _prep("id", execution_id),
        ExecutionStatus.QUEUED.value,
        _prep("cancel_requested", False),
        last_seq,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def update_owned_execution(execution_id: uuid.UUID, *, worker: str, **fields: Any) -> bool:
    """Set ``fields`` on the run if ``worker`` still owns it; True when it did."""
    table = connection.ops.quote_name(Execution._meta.db_table)
    assignments = ", ".join(f"{_column(name)} = %s" for name in fields)
    sql = (
        f"UPDATE {table} SET {assignments} WHERE {_column('id')} = %s "  # noqa: S608
        f"AND {_column('worker')} = %s AND {_column('status')} = %s"
    )
    params = [_prep(name, value) for name, value in fields.items()]
    params += [_prep("id", execution_id), worker, ExecutionStatus.RUNNING.value]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


class RunFlags(CancelFlags):
    """The cancel flags of the runs this process owns. No heartbeat here: a run's heartbeat is
    its owner's fenced flush (``update_owned_execution``), written by its coordinator, so a
    run whose coordinator is stuck goes stale even while the process lives."""

    def read(self, keys: list[Any]) -> dict[Any, bool]:
        return dict(Execution.objects.filter(pk__in=keys).values_list("pk", "cancel_requested"))


run_flags = RunFlags()


def lock_execution_before_delete(sender, instance: Execution, using: str, **kwargs) -> None:
    """``pre_delete`` of an Execution (a graph's or a user's deletion cascading to its runs):
    take the row lock before any of the run's events or node runs are deleted.

    The owner's flush updates this row first (``update_owned_execution``) and then inserts
    events and node runs. Without the lock, a flush that commits between the cascade's delete
    of the events and its delete of the execution leaves rows pointing at a deleted run, and
    PostgreSQL refuses the deletion at commit. With it, either the flush commits first (and
    the cascade's later statements see its rows) or it waits, finds no row, and stops.
    """
    Execution.objects.using(using).select_for_update().filter(pk=instance.pk).exists()
