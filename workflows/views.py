"""Executions REST API: thin views over ``workflows.selectors`` and ``workflows.services``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from canvas.core.exceptions import ApplicationError
from canvas.core.idempotency import idempotent
from canvas.core.idempotency import schema_parameter as idempotency_header
from canvas.core.pagination import ForwardCursorPagination
from canvas.core.schema import idempotency_responses
from canvas.core.throttles import StartThrottle
from canvas.core.viewsets import OwnerScopedViewSet
from graphs.selectors import graph_get_for_user
from workflows import selectors, services
from workflows.models import Execution, ExecutionStatus
from workflows.serializers import (
    EventPageSerializer,
    EventSerializer,
    EventsQuerySerializer,
    ExecutionCreateSerializer,
    ExecutionFilterSerializer,
    ExecutionListItemSerializer,
    ExecutionSerializer,
    ExecutionSummarySerializer,
)

EXECUTION_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)
GRAPH_ID = OpenApiParameter("graph_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
NOT_FOUND = {404: OpenApiTypes.OBJECT}
BAD_REQUEST = {400: OpenApiTypes.OBJECT}


def _parse(serializer: Serializer) -> dict:
    if not serializer.is_valid():
        raise ApplicationError(
            "Invalid input.",
            errors={
                field: [{"field": field, "message": str(message)} for message in messages]
                for field, messages in serializer.errors.items()
            },
        )
    return serializer.validated_data


class EventPagination(ForwardCursorPagination):
    ordering = "seq"
    page_size = selectors.EVENTS_PAGE_SIZE


@extend_schema_view(
    get=extend_schema(
        summary="Executions of one graph",
        parameters=[GRAPH_ID],
        responses={200: ExecutionListItemSerializer(many=True), **NOT_FOUND},
    ),
    post=extend_schema(
        summary="Run the graph",
        description="Validates the graph and the inputs, snapshots the graph and queues the run.",
        parameters=[GRAPH_ID, idempotency_header()],
        request=ExecutionCreateSerializer,
        responses={
            202: ExecutionSerializer,
            **BAD_REQUEST,
            **NOT_FOUND,
            **idempotency_responses(),
        },
    ),
)
class GraphExecutionsView(generics.GenericAPIView):
    serializer_class = ExecutionSummarySerializer

    def get_throttles(self):
        if self.request.method == "POST":
            return [StartThrottle()]
        return super().get_throttles()

    def get_serializer_class(self):
        # By method: the browsable API renders its POST form (an `inputs` field) from it.
        if self.request is not None and self.request.method == "POST":
            return ExecutionCreateSerializer
        return ExecutionSummarySerializer

    def get_queryset(self):
        graph = graph_get_for_user(user=self.request.user, graph_id=self.kwargs["graph_id"])
        return selectors.execution_list(user=self.request.user, graph_id=graph.id)

    def get(self, request, graph_id):
        page = self.paginate_queryset(self.get_queryset())
        items = ExecutionListItemSerializer(page, many=True, context={"request": request})
        return self.get_paginated_response(items.data)

    @idempotent(
        replay=lambda request, execution_id: _execution_accepted(request, execution_id),
        in_flight_seconds=30,
    )
    def post(self, request, graph_id, *, idempotency):
        graph = graph_get_for_user(user=request.user, graph_id=graph_id)
        data = _parse(ExecutionCreateSerializer(data=request.data))
        execution = services.execution_create(
            user=request.user, graph=graph, inputs=data["inputs"], idempotency=idempotency
        )
        # The run as created (queued, no node runs yet), from memory: reading it back cost a
        # tenth of the POST, and during an outage the read could fail after the commit (a
        # 503 then would make a retrying client start the run twice). ExecutionSerializer's
        # shape; its node_runs field would compile a query of an empty queryset to list none.
        data = ExecutionSummarySerializer(execution).data
        data["node_runs"] = []
        return Response(data, status=status.HTTP_202_ACCEPTED)


def _execution_accepted(request, execution_id) -> Response:
    execution = selectors.execution_get_for_user(
        user=request.user, execution_id=execution_id, with_node_runs=True
    )
    return Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(
        summary="Your executions, newest first",
        parameters=[
            OpenApiParameter("graph", OpenApiTypes.UUID, description="Only this graph's runs."),
            OpenApiParameter("status", OpenApiTypes.STR, enum=ExecutionStatus.values),
        ],
        responses={200: ExecutionListItemSerializer(many=True), **BAD_REQUEST},
    ),
    retrieve=extend_schema(
        summary="One execution with its node runs",
        parameters=[EXECUTION_ID],
        responses={200: ExecutionSerializer, **NOT_FOUND},
    ),
)
class ExecutionViewSet(OwnerScopedViewSet):
    model = Execution
    serializer_class = ExecutionSerializer
    lookup_value_regex = "[^/]+"

    def owner_queryset(self, user):
        params = _parse(ExecutionFilterSerializer(data=self.request.query_params))
        return selectors.execution_list(
            user=user, graph_id=params.get("graph"), status=params.get("status")
        )

    def owner_object(self, user, pk):
        return selectors.execution_get_for_user(user=user, execution_id=pk, with_node_runs=True)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        items = ExecutionListItemSerializer(page, many=True, context={"request": request})
        return self.get_paginated_response(items.data)

    def retrieve(self, request, pk=None):
        return Response(ExecutionSerializer(self.get_object()).data)

    @extend_schema(
        summary="Cancel a queued or running execution (idempotent)",
        parameters=[EXECUTION_ID],
        request=None,
        responses={202: ExecutionSerializer, **NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        execution = services.execution_cancel_for_user(user=request.user, execution_id=pk)
        execution = selectors.execution_get_for_user(
            user=request.user, execution_id=execution.id, with_node_runs=True
        )
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The persisted event log, oldest first",
        description=f"Events with `seq > after`, at most {selectors.EVENTS_PAGE_SIZE} a page; "
        "`next` links the following page. `node.token` is never stored.",
        parameters=[
            EXECUTION_ID,
            OpenApiParameter("after", OpenApiTypes.INT, description="Return events after it."),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From `next`."),
        ],
        responses={200: EventPageSerializer, **BAD_REQUEST, **NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        execution = selectors.execution_get_for_user(user=request.user, execution_id=pk)
        after = _parse(EventsQuerySerializer(data=request.query_params))["after"]
        paginator = EventPagination()
        rows = paginator.paginate_queryset(
            selectors.execution_events(execution=execution, after=after), request, view=self
        )
        return paginator.get_paginated_response(EventSerializer(rows, many=True).data)
