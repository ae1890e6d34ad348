"""Executions as the API reads and writes them (design: REST API, Executions)."""

from rest_framework import serializers

from canvas.core.fields import DetailLinkField
from canvas.core.serializers import FieldsBuiltOnceMixin
from graphs.serializers import check_json
from workflows.models import Execution, ExecutionEvent, ExecutionStatus, NodeRun


class ExecutionCreateSerializer(serializers.Serializer):
    inputs = serializers.DictField(required=False, default=dict)

    def validate_inputs(self, value):
        # NUL characters (PostgreSQL refuses them), non-finite numbers, absurd nesting: 400.
        check_json(value)
        return value


class ExecutionFilterSerializer(serializers.Serializer):
    graph = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=ExecutionStatus.choices, required=False)


class EventsQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(required=False, default=0, min_value=0)


class NodeRunSerializer(serializers.ModelSerializer):
    node = serializers.UUIDField(source="node_id")
    type = serializers.CharField(source="node_type")
    # Plain text in the schema: a second enum named "status" would collide with the run's.
    status = serializers.CharField(
        help_text="pending, running, succeeded, failed, skipped, cancelled or cached"
    )
    label = serializers.SerializerMethodField(help_text="The node's label when the run began.")

    class Meta:
        model = NodeRun
        fields = [
            "node",
            "type",
            "label",
            "status",
            "inputs",
            "outputs",
            "error",
            "attempts",
            "started_at",
            "finished_at",
            "usage",
        ]

    def get_label(self, run) -> str:
        # From the run's snapshot (the graph as it ran), read once per execution.
        execution = run.execution
        labels = getattr(execution, "_node_labels", None)
        if labels is None:
            nodes = (execution.snapshot or {}).get("nodes", [])
            labels = {str(node.get("id")): node.get("label", "") for node in nodes}
            execution._node_labels = labels
        return labels.get(str(run.node_id), "")


class ExecutionSummarySerializer(FieldsBuiltOnceMixin, serializers.ModelSerializer):
    # The POST's 202 body and a run's GET read one run each: fields built once per class.
    class Meta:
        model = Execution
        fields = [
            "id",
            "graph",
            "graph_version",
            "status",
            "inputs",
            "outputs",
            "error",
            "queued_at",
            "started_at",
            "finished_at",
        ]


class ExecutionListItemSerializer(ExecutionSummarySerializer):
    """A run in a list (yours, or a graph's): no node runs, and `url`, the link to the run."""

    url = DetailLinkField(view_name="execution-detail")

    class Meta(ExecutionSummarySerializer.Meta):
        fields = [*ExecutionSummarySerializer.Meta.fields, "url"]


class ExecutionSerializer(ExecutionSummarySerializer):
    node_runs = NodeRunSerializer(many=True, read_only=True)

    class Meta(ExecutionSummarySerializer.Meta):
        fields = [*ExecutionSummarySerializer.Meta.fields, "node_runs"]


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ExecutionEvent
        fields = ["seq", "event", "data", "ts"]


class EventPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    results = EventSerializer(many=True)
