"""Model instances read with plain SQL built from the model's meta, for reads on every request.

Compiling a queryset costs ≈0.2 ms a query (measured: ``Graph.objects.filter(owner=user)
.get(pk=...)`` 243 µs CPU against 30 µs for the same statement, row and instance here), more
than the database's work for one row; the token lookup and the graph read of every run's POST
paid it. The statement here is written once per process from the model's columns (a
migration changes it with the model), and each value passes through the converters the ORM
would apply, so every backend gives the instance ``QuerySet.get`` gives.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

# By (builder, database alias). Not by connection: under ASGI each request's context gets a
# connection object of its own. A statement and its converters depend on the backend and the
# settings only (a converter is given the connection it converts for).
_memo: dict[tuple[Hashable, str], Any] = {}


def prepared(
    builder: Callable[[Any], Any], *, using: str = DEFAULT_DB_ALIAS, key: Hashable | None = None
) -> tuple[Any, Any]:
    """``(connection, builder(connection))``, ``builder`` called once per database alias.

    ``key`` names the result instead of ``builder`` itself, for a builder made per call (a
    closure over the columns a statement sets): the first one made for a key is called.
    """
    connection = connections[using]
    memo_key = (builder if key is None else key, using)
    value = _memo.get(memo_key)
    if value is None:
        value = _memo[memo_key] = builder(connection)
    return connection, value


def column_converters(
    connection, model: type[Model], names: Sequence[str]
) -> list[tuple[Any, list]]:
    """``(column, converters)`` of each field in ``names``: its column expression and the
    converters the ORM applies to its values read through ``connection``."""
    table = model._meta.db_table
    found = []
    for name in names:
        column = model._meta.get_field(name).get_col(table)
        found.append(
            (
                column,
                connection.ops.get_db_converters(column) + column.get_db_converters(connection),
            )
        )
    return found


class ModelRows:
    """One model's concrete columns in a ``SELECT``, and its instances from a row's values."""

    def __init__(self, model: type[Model]):
        self.model = model
        self.fields = model._meta.concrete_fields
        self.attnames = [field.attname for field in self.fields]
        self.width = len(self.fields)

    def table(self, connection) -> str:
        return connection.ops.quote_name(self.model._meta.db_table)

    def column(self, connection, name: str) -> str:
        """The quoted, table-qualified column of field ``name``."""
        field = self.model._meta.get_field(name)
        return f"{self.table(connection)}.{connection.ops.quote_name(field.column)}"

    def columns(self, connection) -> str:
        return ", ".join(self.column(connection, field.name) for field in self.fields)

    def converters(self, connection) -> list[tuple[int, list, Any]]:
        """``(index, converters, column)`` for the columns that have any, as the ORM's."""
        names = [field.name for field in self.fields]
        return [
            (index, convs, column)
            for index, (column, convs) in enumerate(
                column_converters(connection, self.model, names)
            )
            if convs
        ]

    def instance(
        self, connection, converters: Sequence[tuple[int, list, Any]], values: Sequence[Any]
    ) -> Model:
        """The instance of ``values`` (this model's columns, in order), as the ORM makes it."""
        values = list(values)
        for index, convs, column in converters:
            value = values[index]
            for convert in convs:
                value = convert(value, column, connection)
            values[index] = value
        return self.model.from_db(connection.alias, self.attnames, values)

    def param(self, connection, name: str, value: Any) -> Any:
        """``value`` of field ``name`` as a query parameter (a UUID is hex text in SQLite)."""
        return self.model._meta.get_field(name).get_db_prep_value(value, connection)
