"""The graphs part of the OpenAPI schema is clean: no generator warnings, typed path ids."""

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

OUR_VIEWS = ("GraphViewSet", "NodeViewSet", "EdgeViewSet", "NodeTypeListView")


def test_graphs_views_generate_no_schema_warnings_and_uuid_path_ids():
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    problems = [
        message
        for message in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "graphs/views.py" in message or any(f"[{view}]" in message for view in OUR_VIEWS)
    ]
    assert not problems

    for path, operations in schema["paths"].items():
        if not path.startswith(("/api/graphs/", "/api/node-types/")):
            continue
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["schema"] == {"type": "string", "format": "uuid"}, (
                        path,
                        parameter,
                    )
    node_types = schema["paths"]["/api/node-types/"]["get"]["responses"]["200"]
    assert node_types["content"]["application/json"]["schema"]["type"] == "array"
