"""Plain multi-row INSERTs and UPDATEs for the engine's flush (node runs, events, cache rows).

``bulk_create`` spends ~10 µs per value in field preparation; a 5,000-node run writes ~20,000
rows, so the engine adapts its few column kinds itself and sends multi-row ``VALUES``
statements; on PostgreSQL a batch of more than ``COLUMNAR_ABOVE`` values goes as one
``INSERT … SELECT * FROM unnest(<one array per column>)`` whatever its number of rows.

``Writes`` gathers the statements that commit together (a flush, a run's creation) and sends
them as one statement on PostgreSQL, one transaction elsewhere.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from canvas.core.modelrows import prepared

UUID, DATETIME, JSON, PLAIN = "uuid", "datetime", "json", "plain"


class JSONText(str):
    """A JSON column's value already encoded (``dumps``): written as it is."""


def dumps(value: Any) -> str | None:
    """A JSON column's value as the row writer writes it."""
    if value is None:
        return None
    if type(value) is JSONText:
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


def _adapters(kinds: Sequence[str], *, sqlite: bool):
    def uuid_(value):
        if value is None:
            return None
        value = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        # PostgreSQL: UUIDs, never text, as a column's array holds one type.
        return value.hex if sqlite else value

    def datetime_(value: datetime | None):
        if value is None or not sqlite:
            return value
        # Django stores naive UTC text in SQLite when USE_TZ is on (str() of the naive time).
        if value.tzinfo is UTC:  # timezone.now()'s: drop "+00:00", at 60 % of the cost
            return value.isoformat(" ")[:-6]
        return str(value.astimezone(UTC).replace(tzinfo=None))

    table = {UUID: uuid_, DATETIME: datetime_, JSON: dumps, PLAIN: None}
    return [table[kind] for kind in kinds]


def _adapting(conn, columns: Sequence[tuple[str, str]]) -> list[tuple[int, Callable]]:
    """``(index, adapter)`` of the columns whose values need adapting (the others go as they
    are)."""
    kinds = [kind for _name, kind in columns]
    adapters = _adapters(kinds, sqlite=conn.vendor == "sqlite")
    return [(index, f) for index, f in enumerate(adapters) if f is not None]


def _typed_arrays(conn, table: str, columns: Sequence[tuple[str, str]]) -> str:
    """PostgreSQL: one parameter per column, an array of the column's base type sent binary
    (text arrays would quote and escape every JSON value in Python); no length modifier, so a
    value too long for its column fails as it would in a VALUES list instead of being cut."""
    fields = {f.column: f for f in _model_of(table)._meta.concrete_fields}
    return ", ".join(f"%b::{_base_type(fields[name].db_type(conn))}[]" for name, _ in columns)


def _by_column(adapt, batch: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """``batch``'s values column by column, adapted (PostgreSQL's arrays)."""
    columns = [list(column) for column in zip(*batch, strict=True)]
    for index, f in adapt:
        columns[index] = [f(value) for value in columns[index]]
    return columns


# Rows per INSERT statement (each backend's parameter cap may lower it: bulk_batch_size).
BATCH_ROWS = 500
# PostgreSQL: a batch of more values than this goes as one array per column (``unnest``).
# psycopg parses the text of a statement with more than 50 parameters again on every
# execution (its cache skips them: a flush's VALUES lists were 10 % of the serving process's
# CPU on a 10-node run, py-spy), and the server plans every new text; the ``unnest`` text is
# one for any number of rows, parsed once and prepared. Below it, psycopg's cached VALUES
# are cheaper (its array dumpers inspect each list).
COLUMNAR_ABOVE = 50
# The name of a fenced ``Writes``' fence in its statement.
FENCE = "fence"


class _Plan:
    """One INSERT's text, row size and value adapters for a backend, built once per database
    (``canvas.core.modelrows.prepared``; a run inserts several times: the text and the
    adapters are the same)."""

    def __init__(self, conn, table, columns, ignore_conflicts, upsert_on):
        qn = conn.ops.quote_name
        kinds = [kind for _name, kind in columns]
        postgres = conn.vendor == "postgresql"
        self.width = len(columns)
        self.row = "(%s)" % ", ".join(  # noqa: UP031
            "%s::jsonb" if postgres and kind == JSON else "%s" for kind in kinds
        )
        # Identifiers come from our models, never from input; values are parameters.
        names = ", ".join(qn(name) for name, _ in columns)
        self.head = f"INSERT INTO {qn(table)} ({names}) "  # noqa: S608
        self.conflict = ""
        self.key = None
        if upsert_on:
            updates = ", ".join(
                f"{qn(name)} = excluded.{qn(name)}" for name, _ in columns if name != upsert_on
            )
            self.conflict = f" ON CONFLICT ({qn(upsert_on)}) DO UPDATE SET {updates}"
            self.key = [name for name, _ in columns].index(upsert_on)
        elif ignore_conflicts:
            self.conflict = " ON CONFLICT DO NOTHING"
        self.adapt = _adapting(conn, columns)
        self.unnest = None
        if postgres:
            arrays = _typed_arrays(conn, table, columns)
            self.unnest = f"{self.head}SELECT * FROM unnest({arrays}){self.conflict}"  # noqa: S608
            # The same, writing its rows only if the fence of ``Writes`` changed its row.
            self.fenced = (
                f"{self.head}SELECT * FROM unnest({arrays}) "  # noqa: S608
                f"WHERE EXISTS (SELECT 1 FROM {FENCE}){self.conflict}"
            )
            self.per_statement = BATCH_ROWS * 10
        else:
            cap = conn.ops.bulk_batch_size(kinds, [None] * BATCH_ROWS)
            self.per_statement = max(1, min(BATCH_ROWS, cap))
        self._sql: dict[int, str] = {}

    def statement(
        self, batch: Sequence[Sequence[Any]], *, fenced: bool = False
    ) -> tuple[str, list[Any]]:
        """The SQL and parameters that insert ``batch`` (``fenced``: PostgreSQL's member of
        a fenced ``Writes``)."""
        if fenced:
            return self.fenced, _by_column(self.adapt, batch)
        if self.unnest is not None and len(batch) * self.width > COLUMNAR_ABOVE:
            return self.unnest, _by_column(self.adapt, batch)
        return self._values_sql(len(batch)), self._values(batch)

    def _values_sql(self, rows: int) -> str:
        text = self._sql.get(rows)
        if text is None:
            text = self._sql[rows] = (
                f"{self.head}VALUES {', '.join([self.row] * rows)}{self.conflict}"
            )
        return text

    def _values(self, batch: Sequence[Sequence[Any]]) -> list[Any]:
        adapt = self.adapt
        params: list[Any] = []
        for row in batch:
            values = list(row)
            for index, f in adapt:
                values[index] = f(values[index])
            params += values
        return params


def _model_of(table: str):
    for model in apps.get_models():
        if model._meta.db_table == table:
            return model
    raise LookupError(f"No installed model has the table {table!r}.")


def _base_type(db_type: str) -> str:
    """``varchar(100)`` -> ``varchar``: the type without its modifier."""
    return re.sub(r"\(.*?\)", "", db_type).strip()


class _UpdatePlan:
    """One UPDATE of rows by their key for a backend: PostgreSQL's sets every row from one
    array per column (``UPDATE … FROM unnest(…)``), other backends' one row a statement."""

    def __init__(self, conn, table, columns):
        qn = conn.ops.quote_name
        names = [qn(name) for name, _ in columns]
        key, changed = names[0], names[1:]
        self.adapt = _adapting(conn, columns)
        self.columnar = conn.vendor == "postgresql"
        if self.columnar:
            arrays = _typed_arrays(conn, table, columns)
            sets = ", ".join(f"{name} = v.{name}" for name in changed)
            self.sql = (
                f"UPDATE {qn(table)} AS t SET {sets} FROM unnest({arrays}) "  # noqa: S608
                f"AS v({', '.join(names)}) WHERE t.{key} = v.{key}"
            )
            self.fenced = f"{self.sql} AND EXISTS (SELECT 1 FROM {FENCE})"  # noqa: S608
        else:
            sets = ", ".join(f"{name} = %s" for name in changed)
            self.sql = f"UPDATE {qn(table)} SET {sets} WHERE {key} = %s"  # noqa: S608

    def statements(self, rows, *, fenced: bool) -> list[tuple[str, list[Any]]]:
        if self.columnar:
            return [(self.fenced if fenced else self.sql, _by_column(self.adapt, rows))]
        statements = []
        for row in rows:
            values = list(row)
            for index, f in self.adapt:
                values[index] = f(values[index])
            statements.append((self.sql, [*values[1:], values[0]]))
        return statements


class Writes:
    """Statements that commit together, sent in as few round trips as the backend allows.

    PostgreSQL: one statement, each write a data-modifying ``WITH`` member, committed on its
    own (outside a transaction, in autocommit) or as part of the caller's transaction: one
    round trip where BEGIN, one per statement and COMMIT took three to six (a flush: ~0.4 ms
    each on this machine, docs/benchmarks.md). Other backends: the statements in order in one
    transaction (a savepoint inside the caller's).

    ``fence``: an UPDATE of one row (SQL and parameters) that decides whether anything is
    written: ``run`` returns False and writes nothing when it changes no row. It runs first,
    so its WHERE sees the rows as they were before these writes.
    """

    def __init__(self, fence: tuple[str, list[Any]] | None = None):
        self.conn = connections[DEFAULT_DB_ALIAS]
        self.one_statement = self.conn.vendor == "postgresql"
        self.fence = fence
        self._fenced = self.one_statement and fence is not None
        self._statements: list[tuple[str, list[Any]]] = []
        self._on_commit: list[Callable[[], None]] = []

    def insert(
        self,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Iterable[Sequence[Any]],
        *,
        ignore_conflicts: bool = False,
        upsert_on: str | None = None,
    ) -> None:
        """INSERT ``rows`` (tuples in ``columns`` order; kinds UUID, DATETIME, JSON, PLAIN).

        ``upsert_on``: a unique column; a row that exists is overwritten with the new values.
        Rows go in statements of up to ``_Plan.per_statement`` rows.
        """
        rows = list(rows)
        if not rows:
            return
        _conn, plan = prepared(
            lambda c: _Plan(c, table, columns, ignore_conflicts, upsert_on),
            key=(__name__, table, tuple(columns), ignore_conflicts, upsert_on),
        )
        if plan.key is not None:
            # One statement may not touch a row twice (PostgreSQL refuses): of rows with the
            # same key, the last wins, as it would row by row.
            rows = list({row[plan.key]: row for row in rows}.values())
        per_statement = plan.per_statement
        self._statements += [
            plan.statement(rows[start : start + per_statement], fenced=self._fenced)
            for start in range(0, len(rows), per_statement)
        ]

    def update(
        self, table: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Set the other columns of the rows whose key (the first column) is each row's."""
        rows = list(rows)
        if rows:
            _conn, plan = prepared(
                lambda c: _UpdatePlan(c, table, columns),
                key=(__name__, "update", table, tuple(columns)),
            )
            self._statements += plan.statements(rows, fenced=self._fenced)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once these writes commit, if ``run`` wrote them
        (``transaction.on_commit``, robust: what committed stays, a failing callback is
        logged)."""
        self._on_commit.append(callback)

    def run(self) -> bool:
        """Write everything; False (nothing written) when the fence changed no row."""
        if self.one_statement:
            written = self._run_one_statement()
        else:
            with transaction.atomic(using=self.conn.alias), self.conn.cursor() as cursor:
                written = True
                if self.fence is not None:
                    cursor.execute(*self.fence)
                    written = cursor.rowcount == 1
                if written:
                    for sql, params in self._statements:
                        cursor.execute(sql, params)
        if written:
            for callback in self._on_commit:
                transaction.on_commit(callback, using=self.conn.alias, robust=True)
        return written

    def _run_one_statement(self) -> bool:
        members: list[str] = []
        params: list[Any] = []
        if self.fence is not None:
            members.append(f"{FENCE} AS ({self.fence[0]} RETURNING 1)")
            params += self.fence[1]
        elif len(self._statements) == 1:
            with self.conn.cursor() as cursor:
                cursor.execute(*self._statements[0])
            return True
        for index, (sql, values) in enumerate(self._statements):
            members.append(f"w{index} AS ({sql})")
            params += values
        if not members:
            return True
        # Names and statements are ours (FENCE, the plans'); values are parameters.
        tail = f"SELECT count(*) FROM {FENCE}" if self.fence is not None else "SELECT 1"  # noqa: S608
        with self.conn.cursor() as cursor:
            cursor.execute(f"WITH {', '.join(members)} {tail}", params)
            return cursor.fetchone()[0] == 1


def select_json(sql: str, params: Sequence[Any]) -> Any:
    """The first column of the first row as decoded JSON, or None."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    value = row[0]
    return json.loads(value) if isinstance(value, str | bytes) else value


_DATETIME_ADAPTERS = {sqlite: _adapters([DATETIME], sqlite=sqlite)[0] for sqlite in (True, False)}


def adapt_datetime(value: datetime) -> Any:
    """``value`` as the row writer sends a DATETIME column's value to the default database."""
    return _DATETIME_ADAPTERS[connections[DEFAULT_DB_ALIAS].vendor == "sqlite"](value)
