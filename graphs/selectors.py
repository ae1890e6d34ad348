"""Reads of graphs, always through the owner: what a user cannot see does not exist (404)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from canvas.exceptions import NotFoundError
from canvas.ids import parse_id
from graphs.models import Edge, Graph, Node


def graph_list_for_user(*, user) -> QuerySet[Graph]:
    return Graph.objects.filter(owner=user).order_by("-updated_at", "id")


def graph_get_for_user(*, user, graph_id: Any, lock: bool = False) -> Graph:
    """The user's graph, or ``NotFoundError``. ``lock`` takes the row lock (call inside a
    transaction): writers of one graph then run one at a time, so validation sees what it
    writes over."""
    queryset = Graph.objects.filter(owner=user)
    if lock:
        queryset = queryset.select_for_update()
    try:
        return queryset.get(pk=parse_id(graph_id, what="graph"))
    except Graph.DoesNotExist:
        raise NotFoundError("No such graph.") from None


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
    """Nodes and edges in the document shape, in two queries (plain rows, no model objects:
    a 1,000-node graph is read on every canvas open)."""
    nodes = [node_as_dict(row) for row in node_list_for_graph(graph=graph).values(*NODE_VALUES)]
    edges = [edge_as_dict(row) for row in edge_list_for_graph(graph=graph).values(*EDGE_VALUES)]
    return nodes, edges


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
    nodes, edges = graph_nodes_and_edges(graph=graph)
    return {**graph_header(graph), "nodes": nodes, "edges": edges}
