"""Graphs REST API: thin views that parse, call a selector or a service, and render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from canvas.core.exceptions import ApplicationError
from canvas.core.viewsets import OwnerScopedViewSet
from graphs import selectors, services
from graphs.models import Edge, Graph, Node
from graphs.registry import registry
from graphs.serializers import (
    EdgeListItemSerializer,
    EdgeSerializer,
    EdgeUpdateSerializer,
    ErrorSerializer,
    GraphDocumentSerializer,
    GraphInputSerializer,
    GraphListItemSerializer,
    GraphPatchSerializer,
    GraphSummarySerializer,
    NodeListItemSerializer,
    NodeSerializer,
    NodeTypeSerializer,
    NodeUpdateSerializer,
    ValidationResultSerializer,
    errors_to_map,
)
from graphs.validation import validate_document


def parse(
    serializer: serializers.Serializer, *, key: str, authorize: Callable[[], Any] | None = None
) -> dict[str, Any]:
    """Validated data, or an ``ApplicationError`` carrying the design's error map.

    ``authorize`` resolves the object the request is about; it runs before a 400 is answered
    so that another user's object answers 404 whatever the body (the happy path leaves the
    lookup to the service, which locks the row anyway).
    """
    if not serializer.is_valid():
        if authorize is not None:
            authorize()
        raise ApplicationError(
            "Invalid input.",
            errors=errors_to_map(serializer.errors, serializer.initial_data, key=key),
        )
    return serializer.validated_data


GRAPH_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)
NESTED_GRAPH_ID = OpenApiParameter("graph_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
NODE_ID = OpenApiParameter("node_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
EDGE_ID = OpenApiParameter("edge_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
NOT_FOUND = {404: OpenApiTypes.OBJECT}
BAD_REQUEST = {400: ErrorSerializer}


@extend_schema_view(
    list=extend_schema(summary="List your graphs", responses=GraphListItemSerializer(many=True)),
    create=extend_schema(
        summary="Create a graph, optionally with a whole document",
        request=GraphInputSerializer,
        responses={201: GraphDocumentSerializer, **BAD_REQUEST},
    ),
    retrieve=extend_schema(
        summary="A graph with its nodes and edges",
        parameters=[GRAPH_ID],
        responses={200: GraphDocumentSerializer, **NOT_FOUND},
    ),
    update=extend_schema(
        summary="Replace the whole document atomically (canvas save)",
        parameters=[GRAPH_ID],
        request=GraphInputSerializer,
        responses={200: GraphDocumentSerializer, **BAD_REQUEST, **NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change the graph's own fields",
        parameters=[GRAPH_ID],
        request=GraphPatchSerializer,
        responses={200: GraphSummarySerializer, **BAD_REQUEST, **NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a graph", parameters=[GRAPH_ID], responses={204: None, **NOT_FOUND}
    ),
    validate=extend_schema(
        summary="Validate: structural and incomplete errors per node",
        parameters=[GRAPH_ID],
        request=None,
        responses={200: ValidationResultSerializer, **NOT_FOUND},
    ),
)
class GraphViewSet(OwnerScopedViewSet):
    """Your graphs. Another user's graph, a missing one and a malformed id all answer 404."""

    model = Graph
    serializer_class = GraphSummarySerializer
    lookup_value_regex = "[^/]+"

    def owner_queryset(self, user):
        return selectors.graph_list_for_user(user=user)

    def owner_object(self, user, pk):
        # The actions use the selectors directly; the browsable API's forms call this.
        return selectors.graph_get_for_user(user=user, graph_id=pk)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        items = GraphListItemSerializer(page, many=True, context={"request": request})
        return self.get_paginated_response(items.data)

    def create(self, request):
        data = parse(GraphInputSerializer(data=request.data), key="graph")
        saved = services.graph_create(
            owner=request.user,
            name=data["name"],
            description=data["description"],
            nodes=data.get("nodes", []),
            edges=data.get("edges", []),
        )
        return Response(saved.document(), status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        graph = selectors.graph_get_for_user(user=request.user, graph_id=pk)
        return Response(selectors.graph_document(graph=graph))

    def update(self, request, pk=None):
        data = parse(
            GraphInputSerializer(data=request.data, document_required=True),
            key="graph",
            authorize=lambda: selectors.graph_get_for_user(user=request.user, graph_id=pk),
        )
        saved = services.graph_replace(
            user=request.user,
            graph_id=pk,
            name=data["name"],
            description=data["description"],
            nodes=data["nodes"],
            edges=data["edges"],
        )
        return Response(saved.document())

    def partial_update(self, request, pk=None):
        data = parse(
            GraphPatchSerializer(data=request.data),
            key="graph",
            authorize=lambda: selectors.graph_get_for_user(user=request.user, graph_id=pk),
        )
        graph = services.graph_update(user=request.user, graph_id=pk, **data)
        return Response(GraphSummarySerializer(graph).data)

    def destroy(self, request, pk=None):
        services.graph_delete(user=request.user, graph_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def validate(self, request, pk=None):
        graph = selectors.graph_get_for_user(user=request.user, graph_id=pk)
        nodes, edges = selectors.graph_nodes_and_edges(graph=graph)
        return Response(validate_document(nodes, edges))


class NestedViewSet(OwnerScopedViewSet):
    # The graph is resolved through the owner's selector first, so another user's graph
    # answers 404 even for a list (not an empty 200).

    lookup_value_regex = "[^/]+"

    def graph(self):
        return selectors.graph_get_for_user(
            user=self.request.user, graph_id=self.kwargs["graph_id"]
        )

    # The actions below use the selectors directly; the browsable API's forms call these.
    def owner_queryset(self, user):
        return self.model.objects.filter(graph=self.graph())

    def list_item(self, graph: Graph, item: dict[str, Any]) -> dict[str, Any]:
        """A node or edge (document shape) as its list shows it: with ``url``, the absolute
        link to its own endpoint."""
        kwargs = {"graph_id": str(graph.pk), self.lookup_url_kwarg: item["id"]}
        url = reverse(f"{self.basename}-detail", kwargs=kwargs, request=self.request)
        return {**item, "url": url}


@extend_schema_view(
    list=extend_schema(
        summary="Nodes of a graph",
        parameters=[NESTED_GRAPH_ID],
        responses={200: NodeListItemSerializer(many=True), **NOT_FOUND},
    ),
    create=extend_schema(
        summary="Add a node",
        parameters=[NESTED_GRAPH_ID],
        request=NodeSerializer,
        responses={201: NodeSerializer, **BAD_REQUEST, **NOT_FOUND},
    ),
    retrieve=extend_schema(
        summary="A node",
        parameters=[NESTED_GRAPH_ID, NODE_ID],
        responses={200: NodeSerializer, **NOT_FOUND},
    ),
    update=extend_schema(
        summary="Replace a node's fields",
        parameters=[NESTED_GRAPH_ID, NODE_ID],
        request=NodeUpdateSerializer,
        responses={200: NodeSerializer, **BAD_REQUEST, **NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change some of a node's fields",
        parameters=[NESTED_GRAPH_ID, NODE_ID],
        request=NodeUpdateSerializer,
        responses={200: NodeSerializer, **BAD_REQUEST, **NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a node and its edges",
        parameters=[NESTED_GRAPH_ID, NODE_ID],
        responses={204: None, **NOT_FOUND},
    ),
)
class NodeViewSet(NestedViewSet):
    """Nodes of one of your graphs. Every write is validated against the whole graph and
    bumps its version."""

    serializer_class = NodeSerializer
    lookup_url_kwarg = "node_id"
    model = Node

    def owner_object(self, user, pk):
        return selectors.node_as_dict(selectors.node_get(graph=self.graph(), node_id=pk))

    def list(self, request, graph_id=None):
        graph = self.graph()
        queryset = selectors.node_list_for_graph(graph=graph)
        page = self.paginate_queryset(queryset.values(*selectors.NODE_VALUES))
        return self.get_paginated_response(
            [self.list_item(graph, selectors.node_as_dict(row)) for row in page]
        )

    def create(self, request, graph_id=None):
        data = parse(
            NodeSerializer(data=request.data),
            key=_body_key(request.data, "node"),
            authorize=self.graph,
        )
        node = services.node_create(user=request.user, graph_id=graph_id, data=data)
        return Response(node, status=status.HTTP_201_CREATED)

    def retrieve(self, request, graph_id=None, node_id=None):
        node = selectors.node_get(graph=self.graph(), node_id=node_id)
        return Response(selectors.node_as_dict(node))

    def update(self, request, graph_id=None, node_id=None, partial=False):
        # Resolve first: a malformed or foreign id is a 404 before the body is looked at.
        node = selectors.node_get(graph=self.graph(), node_id=node_id)
        serializer = NodeUpdateSerializer(data=request.data, partial=partial)
        data = parse(serializer, key=str(node.pk))
        if partial:
            data = {name: data[name] for name in serializer.initial_data if name in data}
        node_doc = services.node_update(
            user=request.user, graph_id=graph_id, node_id=node.pk, data=data
        )
        return Response(node_doc)

    def partial_update(self, request, graph_id=None, node_id=None):
        return self.update(request, graph_id=graph_id, node_id=node_id, partial=True)

    def destroy(self, request, graph_id=None, node_id=None):
        services.node_delete(user=request.user, graph_id=graph_id, node_id=node_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="Edges of a graph",
        parameters=[NESTED_GRAPH_ID],
        responses={200: EdgeListItemSerializer(many=True), **NOT_FOUND},
    ),
    create=extend_schema(
        summary="Add an edge",
        parameters=[NESTED_GRAPH_ID],
        request=EdgeSerializer,
        responses={201: EdgeSerializer, **BAD_REQUEST, **NOT_FOUND},
    ),
    retrieve=extend_schema(
        summary="An edge",
        parameters=[NESTED_GRAPH_ID, EDGE_ID],
        responses={200: EdgeSerializer, **NOT_FOUND},
    ),
    update=extend_schema(
        summary="Replace an edge's ends",
        parameters=[NESTED_GRAPH_ID, EDGE_ID],
        request=EdgeUpdateSerializer,
        responses={200: EdgeSerializer, **BAD_REQUEST, **NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change some of an edge's ends",
        parameters=[NESTED_GRAPH_ID, EDGE_ID],
        request=EdgeUpdateSerializer,
        responses={200: EdgeSerializer, **BAD_REQUEST, **NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete an edge",
        parameters=[NESTED_GRAPH_ID, EDGE_ID],
        responses={204: None, **NOT_FOUND},
    ),
)
class EdgeViewSet(NestedViewSet):
    """Edges of one of your graphs: an output port of one node to an input port of another.
    Every write is validated against the whole graph and bumps its version."""

    serializer_class = EdgeSerializer
    lookup_url_kwarg = "edge_id"
    model = Edge

    def owner_object(self, user, pk):
        return selectors.edge_as_dict(selectors.edge_get(graph=self.graph(), edge_id=pk))

    def list(self, request, graph_id=None):
        graph = self.graph()
        queryset = selectors.edge_list_for_graph(graph=graph)
        page = self.paginate_queryset(queryset.values(*selectors.EDGE_VALUES))
        return self.get_paginated_response(
            [self.list_item(graph, selectors.edge_as_dict(row)) for row in page]
        )

    def create(self, request, graph_id=None):
        data = parse(
            EdgeSerializer(data=request.data),
            key=_body_key(request.data, "edge"),
            authorize=self.graph,
        )
        edge = services.edge_create(user=request.user, graph_id=graph_id, data=data)
        return Response(edge, status=status.HTTP_201_CREATED)

    def retrieve(self, request, graph_id=None, edge_id=None):
        edge = selectors.edge_get(graph=self.graph(), edge_id=edge_id)
        return Response(selectors.edge_as_dict(edge))

    def update(self, request, graph_id=None, edge_id=None, partial=False):
        edge = selectors.edge_get(graph=self.graph(), edge_id=edge_id)
        serializer = EdgeUpdateSerializer(data=request.data, partial=partial)
        data = parse(serializer, key=str(edge.pk))
        if partial:
            data = {name: data[name] for name in serializer.initial_data if name in data}
        edge_doc = services.edge_update(
            user=request.user, graph_id=graph_id, edge_id=edge.pk, data=data
        )
        return Response(edge_doc)

    def partial_update(self, request, graph_id=None, edge_id=None):
        return self.update(request, graph_id=graph_id, edge_id=edge_id, partial=True)

    def destroy(self, request, graph_id=None, edge_id=None):
        services.edge_delete(user=request.user, graph_id=graph_id, edge_id=edge_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _body_key(data: Any, kind: str) -> str:
    """Errors of a new node or edge are keyed by its id when the client chose one."""
    item_id = data.get("id") if isinstance(data, dict) else None
    return item_id if isinstance(item_id, str) and item_id else kind


class NodeTypeListView(APIView):
    """Every node type: ports in and out, config JSON schema. One unpaginated list."""

    @extend_schema(summary="Node types", responses=NodeTypeSerializer(many=True))
    def get(self, request):
        return Response([node_type.describe() for node_type in registry.all()])
