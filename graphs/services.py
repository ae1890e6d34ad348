"""Writes to graphs. Every write validates structurally, bumps ``version`` and runs in one
transaction holding the graph's row lock, so a failing write changes nothing and concurrent
writers of one graph cannot slip a cycle or a second edge into one input past each other.

Inputs are the validated data of ``graphs.serializers`` (ids may be ``None``: a new id is
chosen). Field lengths and types are checked there; bulk writes skip ``full_clean()`` (1,000
per-row validations would cost more than the whole save) and rely on those serializers, the
structural validation here and the database constraints.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from canvas.core.events import (
    EDGE_CREATED,
    EDGE_DELETED,
    EDGE_UPDATED,
    GRAPH_DELETED,
    GRAPH_NODE_CREATED,
    GRAPH_NODE_DELETED,
    GRAPH_NODE_UPDATED,
    GRAPH_UPDATED,
)
from canvas.core.exceptions import ApplicationError
from graphs.events import GraphEvent, graph_events_publish_on_commit
from graphs.models import Edge, Graph, Node
from graphs.selectors import (
    EDGE_VALUES,
    NODE_VALUES,
    edge_as_dict,
    edge_get,
    graph_get_for_user,
    graph_header,
    graph_nodes_and_edges,
    node_as_dict,
    node_get,
)
from graphs.validation import ErrorMap, structural_errors


@dataclass
class SavedGraph:
    """A graph as just written: the row and its nodes and edges in the document shape."""

    graph: Graph
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {**graph_header(self.graph), "nodes": self.nodes, "edges": self.edges}


# --- documents -------------------------------------------------------------------------------


def _node_doc(data: Mapping[str, Any], *, node_id: Any = None) -> dict[str, Any]:
    position = data.get("position") or {}
    return {
        "id": str(node_id or data.get("id") or uuid.uuid4()),
        "type": data["type"],
        "label": data.get("label", ""),
        "position": {"x": float(position.get("x", 0)), "y": float(position.get("y", 0))},
        "config": data.get("config", {}),
    }


def _edge_doc(data: Mapping[str, Any], *, edge_id: Any = None) -> dict[str, Any]:
    return {
        "id": str(edge_id or data.get("id") or uuid.uuid4()),
        "source": str(data["source"]),
        "source_port": data["source_port"],
        "target": str(data["target"]),
        "target_port": data["target_port"],
    }


def _node_row(graph: Graph, doc: Mapping[str, Any]) -> Node:
    return Node(
        id=uuid.UUID(doc["id"]),
        graph=graph,
        type=doc["type"],
        label=doc["label"],
        position_x=doc["position"]["x"],
        position_y=doc["position"]["y"],
        config=doc["config"],
    )


def _edge_row(graph: Graph, doc: Mapping[str, Any]) -> Edge:
    return Edge(
        id=uuid.UUID(doc["id"]),
        graph=graph,
        source_id=uuid.UUID(doc["source"]),
        source_port=doc["source_port"],
        target_id=uuid.UUID(doc["target"]),
        target_port=doc["target_port"],
    )


def _raise_if(errors: ErrorMap, message: str = "The graph has errors.") -> None:
    if errors:
        raise ApplicationError(message, errors=errors, code="invalid_graph")


def _duplicate_ids(docs: Iterable[Mapping[str, Any]], what: str) -> ErrorMap:
    seen: set[str] = set()
    errors: ErrorMap = {}
    for doc in docs:
        if doc["id"] in seen:
            errors.setdefault(doc["id"], []).append(
                {"field": "id", "message": f"Two {what}s in the document have this id."}
            )
        seen.add(doc["id"])
    return errors


def _foreign_ids(ids: Iterable[str], owners: Mapping[str, Any], graph: Graph | None) -> ErrorMap:
    """Ids that already belong to another graph (the client may choose ids, not take them)."""
    return {
        object_id: [{"field": "id", "message": "This id belongs to another graph."}]
        for object_id in ids
        if object_id in owners and (graph is None or owners[object_id] != graph.pk)
    }


def _new_errors(before: ErrorMap, after: ErrorMap) -> ErrorMap:
    """Errors a change introduces (a nested write is not blamed for an older problem)."""
    new: ErrorMap = {}
    for key, entries in after.items():
        fresh = [entry for entry in entries if entry not in before.get(key, [])]
        if fresh:
            new[key] = fresh
    return new


def _bump(graph: Graph, *, events: list[GraphEvent], **fields: Any) -> None:
    """Raise the version and publish ``events`` on commit (call holding the row lock)."""
    now = timezone.now()
    Graph.objects.filter(pk=graph.pk).update(version=F("version") + 1, updated_at=now, **fields)
    graph.version += 1
    graph.updated_at = now
    for name, value in fields.items():
        setattr(graph, name, value)
    graph_events_publish_on_commit(graph=graph, events=events)


def _graph_updated(graph: Graph, *, replaced: bool) -> GraphEvent:
    """``graph.updated``; ``replaced`` says nodes or edges changed too (refetch them)."""
    return (
        GRAPH_UPDATED,
        {"name": graph.name, "description": graph.description, "replaced": replaced},
    )


# --- graphs ----------------------------------------------------------------------------------


@transaction.atomic
def graph_create(
    *,
    owner,
    name: str,
    description: str = "",
    nodes: Iterable[Mapping[str, Any]] = (),
    edges: Iterable[Mapping[str, Any]] = (),
) -> SavedGraph:
    """Create a graph, optionally with a whole document of nodes and edges."""
    node_docs = [_node_doc(node) for node in nodes]
    edge_docs = [_edge_doc(edge) for edge in edges]
    _raise_if({**_duplicate_ids(node_docs, "node"), **_duplicate_ids(edge_docs, "edge")})
    taken = _existing_owners(node_docs, edge_docs)
    _raise_if(_foreign_ids(taken.keys(), taken, None))
    _raise_if(structural_errors(node_docs, edge_docs))

    graph = Graph(owner=owner, name=name, description=description)
    graph.full_clean()
    graph.save()
    Node.objects.bulk_create([_node_row(graph, doc) for doc in node_docs])
    Edge.objects.bulk_create([_edge_row(graph, doc) for doc in edge_docs])
    return SavedGraph(graph=graph, nodes=node_docs, edges=edge_docs)


def _existing_owners(node_docs: list[dict], edge_docs: list[dict]) -> dict[str, Any]:
    """Which of these ids exist already, and in which graph."""
    owners: dict[str, Any] = {}
    if node_docs:
        ids = [doc["id"] for doc in node_docs]
        owners.update(
            (str(pk), graph_id)
            for pk, graph_id in Node.objects.filter(pk__in=ids).values_list("pk", "graph_id")
        )
    if edge_docs:
        ids = [doc["id"] for doc in edge_docs]
        owners.update(
            (str(pk), graph_id)
            for pk, graph_id in Edge.objects.filter(pk__in=ids).values_list("pk", "graph_id")
        )
    return owners


@transaction.atomic
def graph_replace(
    *,
    user,
    graph_id: Any,
    name: str,
    description: str = "",
    nodes: Iterable[Mapping[str, Any]],
    edges: Iterable[Mapping[str, Any]],
) -> SavedGraph:
    """Replace the whole document (a canvas save): nodes and edges not in it are deleted,
    the others created or updated in bulk. All or nothing.

    Rows whose id stays keep their ``created_at``; nothing is written for unchanged rows.
    """
    graph = graph_get_for_user(user=user, graph_id=graph_id, lock=True)
    node_docs = [_node_doc(node) for node in nodes]
    edge_docs = [_edge_doc(edge) for edge in edges]
    _raise_if({**_duplicate_ids(node_docs, "node"), **_duplicate_ids(edge_docs, "edge")})

    # One query per table reads this graph's rows and any row already holding a doc id.
    node_ids = [doc["id"] for doc in node_docs]
    edge_ids = [doc["id"] for doc in edge_docs]
    node_rows = Node.objects.filter(Q(graph=graph) | Q(pk__in=node_ids)).values(
        *NODE_VALUES, "graph_id"
    )
    edge_rows = Edge.objects.filter(Q(graph=graph) | Q(pk__in=edge_ids)).values(
        *EDGE_VALUES, "graph_id"
    )
    owners = {str(row["id"]): row["graph_id"] for row in node_rows}
    current_nodes = {
        str(row["id"]): node_as_dict(row) for row in node_rows if row["graph_id"] == graph.pk
    }
    edge_owners = {str(row["id"]): row["graph_id"] for row in edge_rows}
    current_edges = {
        str(row["id"]): edge_as_dict(row) for row in edge_rows if row["graph_id"] == graph.pk
    }
    _raise_if(
        {**_foreign_ids(node_ids, owners, graph), **_foreign_ids(edge_ids, edge_owners, graph)}
    )
    _raise_if(structural_errors(node_docs, edge_docs))

    wanted_nodes = {doc["id"]: doc for doc in node_docs}
    wanted_edges = {doc["id"]: doc for doc in edge_docs}
    # An edge whose ends or ports changed is deleted and created again (edges are small, and
    # this frees its target input before another edge takes it).
    stale_edges = [
        edge_id
        for edge_id, current in current_edges.items()
        if wanted_edges.get(edge_id) != current
    ]
    new_edges = [doc for doc in edge_docs if current_edges.get(doc["id"]) != doc]
    stale_nodes = [node_id for node_id in current_nodes if node_id not in wanted_nodes]
    new_nodes = [doc for doc in node_docs if doc["id"] not in current_nodes]
    changed_nodes = [
        doc for doc in node_docs if doc["id"] in current_nodes and current_nodes[doc["id"]] != doc
    ]

    if stale_edges:
        Edge.objects.filter(pk__in=stale_edges).delete()
    if stale_nodes:
        # Every edge touching these nodes was deleted just above (the document's edges may
        # only join the document's nodes), so a plain DELETE is enough; QuerySet.delete()
        # would select the rows again and delete them 100 at a time. tests/graphs asserts
        # that Edge is the only model pointing at Node, which this relies on.
        stale = Node.objects.filter(pk__in=stale_nodes)
        stale._raw_delete(stale.db)
    if new_nodes or changed_nodes:
        # One upsert for new and changed nodes: INSERT … ON CONFLICT (id) DO UPDATE. Django's
        # bulk_update builds a CASE WHEN per row and field, which took ~2.7 s for 1,000 moved
        # nodes; the upsert keeps created_at of existing rows and sets updated_at. Ids were
        # checked above (under the graph's lock) to be new or this graph's own.
        Node.objects.bulk_create(
            [_node_row(graph, doc) for doc in [*new_nodes, *changed_nodes]],
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=["type", "label", "position_x", "position_y", "config", "updated_at"],
        )
    if new_edges:
        Edge.objects.bulk_create([_edge_row(graph, doc) for doc in new_edges])

    changed = stale_edges or stale_nodes or new_nodes or changed_nodes or new_edges
    if changed or (name, description) != (graph.name, graph.description):
        graph.name, graph.description = name, description
        _bump(
            graph,
            name=name,
            description=description,
            events=[_graph_updated(graph, replaced=bool(changed))],
        )
    return SavedGraph(graph=graph, nodes=node_docs, edges=edge_docs)


@transaction.atomic
def graph_update(*, user, graph_id: Any, **fields: Any) -> Graph:
    """Change the graph's own fields (``name``, ``description``); nodes and edges stay.

    A change that changes nothing keeps the version and publishes nothing.
    """
    graph = graph_get_for_user(user=user, graph_id=graph_id, lock=True)
    allowed = {"name", "description"}
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(f"Cannot change {', '.join(sorted(unknown))} here.")
    changed = {name: value for name, value in fields.items() if getattr(graph, name) != value}
    if not changed:
        # Nothing changes: no new version, no graph.updated (as a PUT of the same document).
        return graph
    for name, value in changed.items():
        setattr(graph, name, value)
    graph.full_clean()
    _bump(graph, events=[_graph_updated(graph, replaced=False)], **changed)
    return graph


@transaction.atomic
def graph_delete(*, user, graph_id: Any) -> None:
    graph = graph_get_for_user(user=user, graph_id=graph_id, lock=True)
    graph_events_publish_on_commit(graph=graph, events=[(GRAPH_DELETED, {})])
    graph.delete()


@transaction.atomic
def graph_touch(*, graph: Graph) -> None:
    """Bump the version after a change made outside these services (the admin's forms)."""
    locked = Graph.objects.select_for_update().get(pk=graph.pk)
    _bump(locked, events=[_graph_updated(locked, replaced=True)])
    graph.version, graph.updated_at = locked.version, locked.updated_at


def graph_import(*, owner, document: Mapping[str, Any], name: str | None = None) -> SavedGraph:
    """Create a graph from an exported document, giving every node and edge a new id."""
    new_node_ids = {
        str(node["id"]): uuid.uuid4() for node in document.get("nodes", []) if node.get("id")
    }
    nodes = [
        {**node, "id": new_node_ids.get(str(node.get("id")), uuid.uuid4())}
        for node in document.get("nodes", [])
    ]
    edges = [
        {
            **edge,
            "id": uuid.uuid4(),
            # An edge to a node missing from the file keeps its id, and validation says so.
            "source": new_node_ids.get(str(edge["source"]), edge["source"]),
            "target": new_node_ids.get(str(edge["target"]), edge["target"]),
        }
        for edge in document.get("edges", [])
    ]
    return graph_create(
        owner=owner,
        name=name or document["name"],
        description=document.get("description", ""),
        nodes=nodes,
        edges=edges,
    )


# --- nested nodes and edges --------------------------------------------------------------------


def _check_change(
    before: tuple[list[dict], list[dict]], after: tuple[list[dict], list[dict]]
) -> None:
    _raise_if(_new_errors(structural_errors(*before), structural_errors(*after)))


@transaction.atomic
def node_create(*, user, graph_id: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """Add a node to the user's graph; answers the node in the document shape."""
    graph = graph_get_for_user(user=user, graph_id=graph_id, lock=True)
    doc = _node_doc(data)
    if Node.objects.filter(pk=doc["id"]).exists():
        _raise_if({doc["id"]: [{"field": "id", "message": "A node with this id exists."}]})
    nodes, edges = graph_nodes_and_edges(graph=graph)
    _check_change((nodes, edges), ([*nodes, doc], edges))
    _node_row(graph, doc).save(force_insert=True)
    _bump(graph, events=[(GRAPH_NODE_CREATED, {"node": doc})])
    return doc


@transaction.atomic
def node_update(*, user, graph_id: Any, node_id: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """Change a node's type, label, position or config (``data`` may be partial). Edges that
    the change would break (a port that disappears) make it fail."""
    graph = graph_get_for_user(user=user, graph_id=graph_id, lock=True)
    node = node_get(graph=graph, node_id=node_id)
    nodes, edges = graph_nodes_and_edges(graph=graph)
    current = node_as_dict(node)
    doc = _node_doc({**current, **data}, node_id=node.pk)
    _check_change((nodes, edges), ([doc if n["id"] == doc["id"] else n for n in nodes], edges))
    if doc != current:
        row = _node_row(graph, doc)
        row.created_at = node.created_at
        row.save(force_update=True)
        _bump(graph, events=[(GRAPH_NODE_UPDATED, {"node": doc})])
    return doc


@transaction.atomic
def node_delete(*, user, graph_id: Any, node_id: Any) -> None:
    """Delete a node and every edge touching it."""
    graph = graph_get_for_user(user=user, graph_id=graph_id, lock=True)
    node = node_get(graph=graph, node_id=node_id)
    edge_ids = Edge.objects.filter(Q(source=node) | Q(target=node)).values_list("id", flat=True)
    events = [(EDGE_DELETED, {"edge": {"id": str(edge_id)}}) for edge_id in edge_ids]
    events.append((GRAPH_NODE_DELETED, {"node": {"id": str(node.pk)}}))
    node.delete()
    _bump(graph, events=events)


@transaction.atomic
def edge_create(*, user, graph_id: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    graph = graph_get_for_user(user=user, graph_id=graph_id, lock=True)
    doc = _edge_doc(data)
    if Edge.objects.filter(pk=doc["id"]).exists():
        _raise_if({doc["id"]: [{"field": "id", "message": "An edge with this id exists."}]})
    nodes, edges = graph_nodes_and_edges(graph=graph)
    _check_change((nodes, edges), (nodes, [*edges, doc]))
    _edge_row(graph, doc).save(force_insert=True)
    _bump(graph, events=[(EDGE_CREATED, {"edge": doc})])
    return doc


@transaction.atomic
def edge_update(*, user, graph_id: Any, edge_id: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    graph = graph_get_for_user(user=user, graph_id=graph_id, lock=True)
    edge = edge_get(graph=graph, edge_id=edge_id)
    nodes, edges = graph_nodes_and_edges(graph=graph)
    current = edge_as_dict(edge)
    doc = _edge_doc({**current, **data}, edge_id=edge.pk)
    others = [e for e in edges if e["id"] != doc["id"]]
    # The edge's old state is left out of "before" so that it cannot hide its new errors.
    _check_change((nodes, others), (nodes, [*others, doc]))
    if doc != current:
        row = _edge_row(graph, doc)
        row.created_at = edge.created_at
        row.save(force_update=True)
        _bump(graph, events=[(EDGE_UPDATED, {"edge": doc})])
    return doc


@transaction.atomic
def edge_delete(*, user, graph_id: Any, edge_id: Any) -> None:
    graph = graph_get_for_user(user=user, graph_id=graph_id, lock=True)
    edge = edge_get(graph=graph, edge_id=edge_id)
    event = (EDGE_DELETED, {"edge": {"id": str(edge.pk)}})
    edge.delete()
    _bump(graph, events=[event])
