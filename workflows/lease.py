"""Who runs an execution: the claim that takes it, and the fenced writes of its owner.

Statements on the execution row, written in SQL because they run for every execution and
the ORM's query compilation costs more than the database's work on them (≈ 0.3 ms against
0.03 ms per statement on SQLite, measured by ``bench/engine.py``'s small runs):

- ``claim_execution``: one ``UPDATE … RETURNING`` takes a queued run (or a running one whose
  heartbeat went stale) and reads what the engine needs to start it, its last event ``seq``
  included, in one round trip. Of two claimers exactly one changes the row.
- ``read_queued`` and ``claim_queued_statement``: the claim of a fresh run folded into its
  first write. The engine reads a queued run (a plain ``SELECT``, no write; or takes what its
  creator handed the inline executor), runs its first cheap nodes in memory, and claims it in
  its first flush, with a conditional ``UPDATE`` that also writes that flush's fields (the
  run's end, for a small run): one commit per small run instead of two. The row is matched
  only while it is still queued, uncancelled and has the events read, so of two claimers
  exactly one changes it, as with ``claim_execution``; the other writes nothing.
- ``owned_execution_statement``: the ``UPDATE`` that changes the row only while ``worker`` is
  this runner and the run is ``running``; no row changed means the run was taken over or
  ended elsewhere.

These two are statements, not calls: the engine's flush sends them as the fence of its
``workflows.rowwriter.Writes``, which writes the rows they guard only if the fence changed
the run (on PostgreSQL in the same statement).

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

from django.db import DEFAULT_DB_ALIAS, connections

from canvas.core.modelrows import prepared
from integrations.cancellation import CancelFlags
from workflows.models import Execution, ExecutionEvent, ExecutionStatus


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    owner_id: int
    inputs: dict[str, Any]
    # The snapshot as the database driver gave it: JSON text on both backends (Django has
    # psycopg load jsonb as text), which the engine may not need to decode
    # (``workflows.engine.plan_of``).
    raw_snapshot: Any
    cancel_requested: bool
    last_seq: int

    @property
    def snapshot(self) -> dict[str, Any]:
        return _json(self.raw_snapshot)


def _column(conn, name: str) -> str:
    return conn.ops.quote_name(Execution._meta.get_field(name).column)


def _prep(conn, name: str, value: Any) -> Any:
    return Execution._meta.get_field(name).get_db_prep_save(value, conn)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _statement(conn, key: tuple, build) -> str:
    """The statement ``key`` names (what it does and the columns it sets), built once per
    database from the models' columns (canvas.core.modelrows.prepared): identifiers come
    from the models, never from input; values are parameters."""
    return prepared(build, using=conn.alias, key=(__name__, *key))[1]


def _last_seq_sql(conn) -> str:
    """The run's last event ``seq``, as a subquery of a statement on the execution table."""
    qn = conn.ops.quote_name
    meta = ExecutionEvent._meta
    seq, of_execution = (qn(meta.get_field(name).column) for name in ("seq", "execution"))
    return (
        f"SELECT MAX({seq}) FROM {qn(meta.db_table)} "  # noqa: S608
        f"WHERE {of_execution} = {qn(Execution._meta.db_table)}.{_column(conn, 'id')}"
    )


def _read_columns(conn) -> str:
    """What a claimer needs, in ``ClaimedRun`` order."""
    columns = ", ".join(
        _column(conn, name) for name in ("owner", "inputs", "snapshot", "cancel_requested")
    )
    return f"{columns}, ({_last_seq_sql(conn)})"


def _claimed(row) -> ClaimedRun | None:
    if row is None:
        return None
    owner_id, inputs, snapshot, cancel_requested, last_seq = row
    return ClaimedRun(
        owner_id=owner_id,
        inputs=_json(inputs),
        raw_snapshot=snapshot,
        cancel_requested=bool(cancel_requested),
        last_seq=last_seq or 0,
    )


def _claim_sql(conn) -> str:
    table = conn.ops.quote_name(Execution._meta.db_table)
    status, heartbeat = _column(conn, "status"), _column(conn, "heartbeat_at")
    started = _column(conn, "started_at")
    return (
        f"UPDATE {table} SET {status} = %s, {_column(conn, 'worker')} = %s, "  # noqa: S608
        f"{heartbeat} = %s, {started} = COALESCE({started}, %s) "
        f"WHERE {_column(conn, 'id')} = %s AND ({status} = %s OR ({status} = %s AND "
        f"({heartbeat} IS NULL OR {heartbeat} < %s)))"
    )


def _select_sql(conn) -> str:
    table = conn.ops.quote_name(Execution._meta.db_table)
    return f"SELECT {_read_columns(conn)} FROM {table} WHERE {_column(conn, 'id')} = %s"  # noqa: S608


def claim_execution(
    execution_id: uuid.UUID, *, worker: str, now: datetime, stale: datetime
) -> ClaimedRun | None:
    conn = connections[DEFAULT_DB_ALIAS]
    update = _statement(conn, ("claim",), _claim_sql)
    params = [
        ExecutionStatus.RUNNING.value,
        worker,
        _prep(conn, "heartbeat_at", now),
        _prep(conn, "started_at", now),
        _prep(conn, "id", execution_id),
        ExecutionStatus.QUEUED.value,
        ExecutionStatus.RUNNING.value,
        _prep(conn, "heartbeat_at", stale),
    ]
    with conn.cursor() as cursor:
        if conn.features.can_return_columns_from_insert:  # SQLite ≥ 3.35, PostgreSQL
            returning = _statement(
                conn, ("claim-returning",), lambda c: f"{update} RETURNING {_read_columns(c)}"
            )
            cursor.execute(returning, params)
            row = cursor.fetchone()
        else:
            cursor.execute(update, params)
            row = None
            if cursor.rowcount == 1:
                cursor.execute(
                    _statement(conn, ("select",), _select_sql), [_prep(conn, "id", execution_id)]
                )
                row = cursor.fetchone()
    return _claimed(row)


def read_queued(execution_id: uuid.UUID) -> ClaimedRun | None:
    """What ``claim_execution`` returns for a run that is queued, without claiming it (a read:
    no lock, no commit); None when the run is not queued."""
    conn = connections[DEFAULT_DB_ALIAS]
    sql = _statement(
        conn,
        ("read-queued",),
        lambda c: f"{_select_sql(c)} AND {_column(c, 'status')} = %s",
    )
    with conn.cursor() as cursor:
        cursor.execute(sql, [_prep(conn, "id", execution_id), ExecutionStatus.QUEUED.value])
        return _claimed(cursor.fetchone())


def claim_queued_statement(
    execution_id: uuid.UUID, *, worker: str, started: datetime, last_seq: int, **fields: Any
) -> tuple[str, list[Any]]:
    """The UPDATE that claims a run ``read_queued`` read and sets ``fields`` on it (``status``
    defaults to ``running``), if it is still queued, not cancelled and its last event is
    ``last_seq``: a fence for ``workflows.rowwriter.Writes``."""
    conn = connections[DEFAULT_DB_ALIAS]
    fields = {"status": ExecutionStatus.RUNNING.value, **fields}

    def build(c) -> str:
        table = c.ops.quote_name(Execution._meta.db_table)
        assignments = ", ".join(f"{_column(c, name)} = %s" for name in fields)
        started_at = _column(c, "started_at")
        return (
            f"UPDATE {table} SET {assignments}, {_column(c, 'worker')} = %s, "  # noqa: S608
            f"{started_at} = COALESCE({started_at}, %s) "
            f"WHERE {_column(c, 'id')} = %s AND {_column(c, 'status')} = %s "
            f"AND {_column(c, 'cancel_requested')} = %s AND ({_last_seq_sql(c)}) = %s"
        )

    sql = _statement(conn, ("claim-queued", *fields), build)
    params = [_prep(conn, name, value) for name, value in fields.items()]
    params += [
        worker,
        _prep(conn, "started_at", started),
        _prep(conn, "id", execution_id),
        ExecutionStatus.QUEUED.value,
        _prep(conn, "cancel_requested", False),
        last_seq,
    ]
    return sql, params


def owned_execution_statement(
    execution_id: uuid.UUID, *, worker: str, **fields: Any
) -> tuple[str, list[Any]]:
    """The UPDATE that sets ``fields`` on the run if ``worker`` still owns it: a fence for
    ``workflows.rowwriter.Writes``."""
    conn = connections[DEFAULT_DB_ALIAS]

    def build(c) -> str:
        table = c.ops.quote_name(Execution._meta.db_table)
        assignments = ", ".join(f"{_column(c, name)} = %s" for name in fields)
        return (
            f"UPDATE {table} SET {assignments} WHERE {_column(c, 'id')} = %s "  # noqa: S608
            f"AND {_column(c, 'worker')} = %s AND {_column(c, 'status')} = %s"
        )

    sql = _statement(conn, ("owned", *fields), build)
    params = [_prep(conn, name, value) for name, value in fields.items()]
    params += [_prep(conn, "id", execution_id), worker, ExecutionStatus.RUNNING.value]
    return sql, params


class RunFlags(CancelFlags):
    """The cancel flags of the runs this process owns. No heartbeat here: a run's heartbeat is
    its owner's fenced flush (``owned_execution_statement``), written by its coordinator, so a
    run whose coordinator is stuck goes stale even while the process lives."""

    def read(self, keys: list[Any]) -> dict[Any, bool]:
        return dict(Execution.objects.filter(pk__in=keys).values_list("pk", "cancel_requested"))


run_flags = RunFlags()


def lock_execution_before_delete(sender, instance: Execution, using: str, **kwargs) -> None:
    """``pre_delete`` of an Execution (a graph's or a user's deletion cascading to its runs):
    take the row lock before any of the run's events or node runs are deleted.

    The owner's flush updates this row first (its fence, ``owned_execution_statement``) and
    inserts events and node runs only if that changed the row. Without the lock, a flush that
    commits between the cascade's delete of the events and its delete of the execution leaves
    rows pointing at a deleted run, and PostgreSQL refuses the deletion at commit. With it,
    either the flush commits first (and the cascade's later statements see its rows) or it
    waits, finds no row, and stops.
    """
    Execution.objects.using(using).select_for_update().filter(pk=instance.pk).exists()
