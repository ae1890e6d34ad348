"""Input and output serializers of the graphs API. They translate; the services decide.

Input errors are turned into the design's error map (``errors_to_map``) so that every 400 of
this API has one shape: ``{"detail", "code", "errors": {<node id, edge id or "graph">:
[{field, message}]}}``.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from rest_framework import serializers

from canvas.core.fields import LINK_HELP, DetailLinkField, StrictCharField
from graphs.models import NAME_MAX_LENGTH, Graph

DESCRIPTION_MAX_LENGTH = 10_000
PORT_MAX_LENGTH = 100


MAX_JSON_DEPTH = 64


def check_json(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse what the databases or the code cannot take, with a 400 instead of a 500:
    ``\\u0000`` anywhere (PostgreSQL refuses it in text and jsonb), NaN and infinities (not
    JSON; ``1e400`` parses as infinity), and nesting deeper than ``max_depth``.

    Iterative, so a deep document cannot exhaust the stack here.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        where = f" at {path}" if path else ""
        if isinstance(item, str):
            if "\x00" in item:
                raise serializers.ValidationError(
                    f"Text may not contain the NUL character (\\u0000){where}."
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise serializers.ValidationError(f"Numbers must be finite{where}.")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise serializers.ValidationError(f"Nested deeper than {max_depth} levels.")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and "\x00" in key:
                    raise serializers.ValidationError(
                        f"Keys may not contain the NUL character (\\u0000){where}."
                    )
                child_path = (
                    f"{path}[{key}]"
                    if isinstance(key, int)
                    else (f"{path}.{key}" if path else str(key))
                )
                stack.append((child, child_path, depth + 1))


def reject_non_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise serializers.ValidationError("Must be a finite number.")


class ConfigField(serializers.JSONField):
    default_error_messages = {"not_object": "Config must be a JSON object."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        check_json(value)
        return value


class PositionSerializer(serializers.Serializer):
    x = serializers.FloatField(validators=[reject_non_finite])
    y = serializers.FloatField(validators=[reject_non_finite])


class NodeSerializer(serializers.Serializer):
    """A node in the document shape (input and output)."""

    id = serializers.UUIDField(required=False, help_text="Chosen by the client, or generated.")
    type = StrictCharField(max_length=100)
    label = StrictCharField(
        max_length=NAME_MAX_LENGTH, allow_blank=True, required=False, default=""
    )
    position = PositionSerializer(required=False, default=lambda: {"x": 0.0, "y": 0.0})
    config = ConfigField(required=False, default=dict)


class NodeUpdateSerializer(NodeSerializer):
    """PUT and PATCH of one node: the id is in the path, not the body."""

    id = serializers.UUIDField(read_only=True)


class EdgeSerializer(serializers.Serializer):
    """An edge in the document shape (input and output)."""

    id = serializers.UUIDField(required=False, help_text="Chosen by the client, or generated.")
    source = serializers.UUIDField(help_text="The node whose output the edge starts at.")
    source_port = StrictCharField(max_length=PORT_MAX_LENGTH)
    target = serializers.UUIDField(help_text="The node whose input the edge ends at.")
    target_port = StrictCharField(max_length=PORT_MAX_LENGTH)


class EdgeUpdateSerializer(EdgeSerializer):
    id = serializers.UUIDField(read_only=True)


class NodeListItemSerializer(NodeSerializer):
    """A node in its graph's node list: the document shape and `url`, the link to the node."""

    # The schema of the list; the view adds `url` to the selector's dicts (NestedViewSet).
    url = serializers.URLField(read_only=True, help_text=LINK_HELP)


class EdgeListItemSerializer(EdgeSerializer):
    """An edge in its graph's edge list: the document shape and `url`, the link to the edge."""

    url = serializers.URLField(read_only=True, help_text=LINK_HELP)


class GraphSummarySerializer(serializers.ModelSerializer):
    """A graph's own fields, no nodes or edges (the PATCH answer; the list adds ``url``)."""

    class Meta:
        model = Graph
        fields = ["id", "name", "description", "version", "created_at", "updated_at"]
        read_only_fields = fields


class GraphListItemSerializer(GraphSummarySerializer):
    """A graph in the list: its own fields and `url`, the link to its document."""

    url = DetailLinkField(view_name="graph-detail")

    class Meta(GraphSummarySerializer.Meta):
        fields = [*GraphSummarySerializer.Meta.fields, "url"]
        read_only_fields = fields


class GraphInputSerializer(serializers.Serializer):
    """POST (nodes and edges optional) and PUT (a whole document: both required)."""

    name = StrictCharField(max_length=NAME_MAX_LENGTH)
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH, allow_blank=True, required=False, default=""
    )
    version = serializers.IntegerField(
        required=False, help_text="Ignored on input: the server bumps it."
    )
    nodes = serializers.ListField(
        child=NodeSerializer(), required=False, max_length=settings.GRAPH_MAX_NODES
    )
    edges = serializers.ListField(
        child=EdgeSerializer(), required=False, max_length=settings.GRAPH_MAX_EDGES
    )

    def __init__(self, *args, document_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if document_required:
            self.fields["nodes"].required = True
            self.fields["edges"].required = True


class GraphPatchSerializer(serializers.Serializer):
    """PATCH: the graph's own fields only."""

    name = StrictCharField(max_length=NAME_MAX_LENGTH, required=False)
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH, allow_blank=True, required=False
    )

    def validate(self, attrs):
        document_fields = {"nodes", "edges"} & set(self.initial_data)
        if document_fields:
            message = (
                "PATCH changes the graph's own fields; send nodes and edges with PUT "
                "or the nested endpoints."
            )
            raise serializers.ValidationError(dict.fromkeys(sorted(document_fields), message))
        return attrs


class GraphDocumentSerializer(serializers.Serializer):
    """The whole document, as GET, POST and PUT answer it (built by the selector)."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    nodes = NodeSerializer(many=True)
    edges = EdgeSerializer(many=True)


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.DictField(child=serializers.CharField())),
        help_text='{<node id, edge id or "graph">: [{field, message}]}',
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every 400 of the graphs API."""

    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.DictField(child=serializers.CharField())),
        required=False,
        help_text='{<node id, edge id or "graph">: [{field, message}]}',
    )


class PortSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["text", "json", "number", "bool", "any"])
    required = serializers.BooleanField()
    description = serializers.CharField()


class NodeTypeSerializer(serializers.Serializer):
    type = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    inputs = PortSerializer(many=True, help_text="Static input ports.")
    outputs = PortSerializer(many=True)
    dynamic_inputs = serializers.BooleanField(
        help_text="True when more input ports come from the config (one per {variable})."
    )
    config_schema = serializers.JSONField(help_text="The JSON schema of the config.")


# --- error maps ------------------------------------------------------------------------------


def _flatten(errors: Any, field: str = "") -> list[dict[str, str]]:
    """DRF's nested error structure → ``[{field, message}]`` with dotted field paths."""
    if isinstance(errors, dict):
        out = []
        for key, value in errors.items():
            name = "" if key == "non_field_errors" else str(key)
            out.extend(_flatten(value, f"{field}.{name}" if field and name else field or name))
        return out
    if isinstance(errors, list):
        out = []
        for value in errors:
            out.extend(_flatten(value, field))
        return out
    return [{"field": field, "message": str(errors)}]


def _item_key(raw_items: Any, kind: str, index: int) -> str:
    """Errors of a document's node or edge are keyed by its id when it has a usable one."""
    try:
        item_id = raw_items[index].get("id")
    except (TypeError, AttributeError, IndexError, KeyError):
        item_id = None
    if isinstance(item_id, str) and item_id:
        return item_id
    return f"{kind}[{index}]"


def errors_to_map(errors: dict, raw: Any, *, key: str = "graph") -> dict[str, list[dict]]:
    """Serializer errors → ``{<node id, edge id or key>: [{field, message}]}``.

    ``raw`` is the request data (to find the ids of the nodes and edges at fault); ``key``
    names the object itself (``"graph"``, or the node or edge being written).
    """
    error_map: dict[str, list[dict]] = {}
    for name, value in errors.items():
        if name in ("nodes", "edges") and isinstance(value, dict):
            raw_items = raw.get(name) if isinstance(raw, dict) else None
            for index, item_errors in value.items():
                item_key = _item_key(raw_items, name, int(index))
                error_map.setdefault(item_key, []).extend(_flatten(item_errors))
            continue
        field = "" if name == "non_field_errors" else name
        error_map.setdefault(key, []).extend(_flatten(value, field))
    return error_map
