"""Reads of graphs, always through the owner: what a user cannot see does not exist (404)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.db.models import Model, QuerySet

from canvas.core.exceptions import ApplicationError, NotFoundError
from canvas.core.ids import parse_id
from canvas.core.modelrows import ModelRows, column_converters, prepared
from graphs.models import Edge, Graph, Node


def graph_list_for_user(*, user) -> QuerySet[Graph]:
    return Graph.objects.filter(owner=user).order_by("-updated_at", "id")


def graph_get_for_user(*, user, graph_id: Any, lock: bool = False) -> Graph:
    """The user's graph, or ``NotFoundError``. ``lock`` takes the row lock (call inside a
    transaction): writers of one graph then run one at a time, so validation sees what it
    writes over."""
    pk = parse_id(graph_id, what="graph")
    if not lock and isinstance(user, Model):
        # Every graph request and run start reads it: one plain statement (canvas.core.modelrows).
        graph = _graph_of_owner(pk, user.pk)
        if graph is None:
            raise NotFoundError("No such graph.")
        return graph
    queryset = Graph.objects.filter(owner=user)
    if lock:
        queryset = queryset.select_for_update()
    try:
        return queryset.get(pk=pk)
    except Graph.DoesNotExist:
        raise NotFoundError("No such graph.") from None


_graphs = ModelRows(Graph)


def _graph_statement(connection):
    sql = (
        f"SELECT {_graphs.columns(connection)} FROM {_graphs.table(connection)} "  # noqa: S608
        f"WHERE {_graphs.column(connection, 'id')} = %s "
        f"AND {_graphs.column(connection, 'owner')} = %s"
    )
    return sql, _graphs.converters(connection)


def _graph_of_owner(pk: uuid.UUID, owner_id: Any) -> Graph | None:
    connection, (sql, converters) = prepared(_graph_statement)
    params = [_graphs.param(connection, "id", pk), _graphs.param(connection, "owner", owner_id)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else _graphs.instance(connection, converters, row)


def graph_get_by_reference(*, reference: str, owner_username: str | None = None) -> Graph:
    """A graph by id or by name, for operators' commands (any owner unless one is given).

    Raises ``NotFoundError`` when nothing matches and ``ApplicationError`` when several graphs
    share the name.
    """
    queryset = Graph.objects.select_related("owner")
    if owner_username:
        queryset = queryset.filter(owner__username=owner_username)
    try:
        return queryset.get(pk=uuid.UUID(reference))
    except (ValueError, Graph.DoesNotExist):
        pass
    matches = list(queryset.filter(name=reference)[:5])
    if not matches:
        raise NotFoundError(f"No graph with id or name {reference!r}.")
    if len(matches) > 1:
        owners = ", ".join(sorted({g.owner.username for g in matches}))
        raise ApplicationError(
            f"Several graphs are named {reference!r} (owners: {owners}); pass its id or --owner."
        )
    return matches[0]


def node_list_for_graph(*, graph: Graph) -> QuerySet[Node]:
    return Node.objects.filter(graph=graph).order_by("created_at", "id")


def edge_list_for_graph(*, graph: Graph) -> QuerySet[Edge]:
    return Edge.objects.filter(graph=graph).order_by("created_at", "id")


def node_get(*, graph: Graph, node_id: Any) -> Node:
    try:
        return Node.objects.get(graph=graph, pk=parse_id(node_id, what="node"))
    except Node.DoesNotExist:
        raise NotFoundError("No such node.") from None


def edge_get(*, graph: Graph, edge_id: Any) -> Edge:
    try:
        return Edge.objects.get(graph=graph, pk=parse_id(edge_id, what="edge"))
    except Edge.DoesNotExist:
        raise NotFoundError("No such edge.") from None


NODE_VALUES = ("id", "type", "label", "position_x", "position_y", "config")
EDGE_VALUES = ("id", "source_id", "source_port", "target_id", "target_port")


def node_as_dict(row: dict[str, Any] | Node) -> dict[str, Any]:
    """A node in the document shape: ``{id, type, label, position: {x, y}, config}``."""
    if isinstance(row, Node):
        row = {name: getattr(row, name) for name in NODE_VALUES}
    return {
        "id": str(row["id"]),
        "type": row["type"],
        "label": row["label"],
        "position": {"x": row["position_x"], "y": row["position_y"]},
        "config": row["config"],
    }


def edge_as_dict(row: dict[str, Any] | Edge) -> dict[str, Any]:
    """An edge in the document shape: ``{id, source, source_port, target, target_port}``."""
    if isinstance(row, Edge):
        row = {name: getattr(row, name) for name in EDGE_VALUES}
    return {
        "id": str(row["id"]),
        "source": str(row["source_id"]),
        "source_port": row["source_port"],
        "target": str(row["target_id"]),
        "target_port": row["target_port"],
    }


def graph_nodes_and_edges(*, graph: Graph) -> tuple[list[dict], list[dict]]:
    """Nodes and edges in the document shape, of one version of the graph."""
    nodes, edges, _version = graph_nodes_and_edges_at_version(graph=graph)
    return nodes, edges


class _VersionedRows:
    """``SELECT <columns>, graph.version FROM <table> JOIN graph … WHERE graph_id = %s``.

    Plain SQL built from the model (a graph's rows are read on every canvas open and every
    execution start, and compiling the equivalent queryset cost ≈ 0.2 ms a query, more than
    the database's work on a small graph). Values pass through the converters the ORM would
    apply, so every backend gives the same Python values.
    """

    def __init__(self, model, names: tuple[str, ...]):
        self.model, self.names = model, names

    def _statement(self, connection) -> tuple[str, list[tuple[str, list, Any]]]:
        # Once per database (canvas.core.modelrows.prepared): the SQL, and the converters
        # of the columns that have any.
        qn = connection.ops.quote_name
        meta, graph_meta = self.model._meta, Graph._meta
        table, graph_table = qn(meta.db_table), qn(graph_meta.db_table)
        columns = column_converters(connection, self.model, self.names)
        select = ", ".join(f"{table}.{qn(col.target.column)}" for col, _ in columns)
        graph_id = f"{table}.{qn(meta.get_field('graph').column)}"
        created, pk = (qn(meta.get_field(name).column) for name in ("created_at", "id"))
        sql = (
            f"SELECT {select}, {graph_table}.{qn(graph_meta.get_field('version').column)} "  # noqa: S608
            f"FROM {table} INNER JOIN {graph_table} "
            f"ON {graph_table}.{qn(graph_meta.pk.column)} = {graph_id} "
            f"WHERE {graph_id} = %s ORDER BY {table}.{created}, {table}.{pk}"
        )
        converters = [
            (name, convs, col)
            for name, (col, convs) in zip(self.names, columns, strict=True)
            if convs
        ]
        return sql, converters

    def fetch(self, graph: Graph) -> tuple[list[dict[str, Any]], set[int]]:
        connection, (sql, converters) = prepared(self._statement)
        with connection.cursor() as cursor:
            cursor.execute(sql, [Graph._meta.pk.get_db_prep_value(graph.pk, connection)])
            raw_rows = cursor.fetchall()
        names, rows, versions = self.names, [], set()
        for raw in raw_rows:
            row = dict(zip(names, raw, strict=False))
            for name, convs, col in converters:
                value = row[name]
                for convert in convs:
                    value = convert(value, col, connection)
                row[name] = value
            rows.append(row)
            versions.add(raw[-1])
        return rows, versions


_node_rows = _VersionedRows(Node, NODE_VALUES)
_edge_rows = _VersionedRows(Edge, EDGE_VALUES)


def graph_nodes_and_edges_at_version(
    *, graph: Graph, attempts: int = 5
) -> tuple[list[dict], list[dict], int]:
    """Nodes, edges and the version they belong to, read without a lock, usually in two queries.

    Each row carries the graph's version, read in the same statement (one statement sees one
    state of the database), and every change of a graph bumps its version in the transaction
    that makes it. Nodes and edges carrying the same version therefore belong to that version;
    different versions mean a change landed between the two reads, so they are read again.
    When there are no edges to carry the version, it is read once more after the edges.
    After ``attempts`` such races the rows are read under the graph's row lock, which every
    writer takes. Raises ``NotFoundError`` when the graph is gone.
    """

    def read() -> tuple[list[dict], list[dict], set[int]]:
        nodes, seen = _node_rows.fetch(graph)
        edges, edge_versions = _edge_rows.fetch(graph)
        seen |= edge_versions
        if not edges:
            current = Graph.objects.filter(pk=graph.pk).values_list("version", flat=True).first()
            if current is None:
                raise NotFoundError("No such graph.")
            seen.add(current)
        return nodes, edges, seen

    for _attempt in range(attempts):
        nodes, edges, seen = read()
        if len(seen) == 1:
            break
    else:
        with transaction.atomic():
            if not Graph.objects.select_for_update().filter(pk=graph.pk).exists():
                raise NotFoundError("No such graph.")
            nodes, edges, seen = read()
    return (
        [node_as_dict(row) for row in nodes],
        [edge_as_dict(row) for row in edges],
        seen.pop(),
    )


def graph_header(graph: Graph) -> dict[str, Any]:
    return {
        "id": str(graph.id),
        "name": graph.name,
        "description": graph.description,
        "version": graph.version,
        "created_at": graph.created_at,
        "updated_at": graph.updated_at,
    }


def graph_document(*, graph: Graph) -> dict[str, Any]:
    """The whole document, as ``GET /api/graphs/{id}/`` and ``export_graph`` give it."""
    nodes, edges, version = graph_nodes_and_edges_at_version(graph=graph)
    return {**graph_header(graph), "version": version, "nodes": nodes, "edges": edges}
