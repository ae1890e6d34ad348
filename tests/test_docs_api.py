"""Every endpoint documented in docs/api.md exists in the OpenAPI schema (and, for the areas
whose rows are complete, every schema operation is documented)."""

import re
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
ROW = re.compile(
    r"^\|\s*((?:GET|POST|PUT|PATCH|DELETE)(?:\s*,\s*(?:GET|POST|PUT|PATCH|DELETE))*)"
    r"\s*\|\s*`?(/api/[^|`\s]*)`?\s*\|"
)
# Areas whose every operation must have a row (others are appended as they are built).
COMPLETE_PREFIXES = ("/api/graphs/", "/api/node-types/", "/api/auth/")
NOT_DOCUMENTED_HERE = ("/api/graphs/{graph_id}/executions/",)


def documented() -> set[tuple[str, str]]:
    pairs = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            methods, path = match.groups()
            pairs.update((method.strip().lower(), path) for method in methods.split(","))
    return pairs


@pytest.fixture(scope="module")
def schema_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method, path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_the_table_parses():
    pairs = documented()
    assert ("get", "/api/graphs/") in pairs
    assert len(pairs) >= 20


def test_every_documented_endpoint_is_in_the_schema(schema_operations):
    missing = sorted(documented() - schema_operations)
    assert not missing, f"in docs/api.md but not in /api/schema/: {missing}"


def test_every_graphs_endpoint_is_documented(schema_operations):
    undocumented = sorted(
        (method, path)
        for method, path in schema_operations
        if path.startswith(COMPLETE_PREFIXES) and path not in NOT_DOCUMENTED_HERE
    )
    undocumented = [pair for pair in undocumented if pair not in documented()]
    assert not undocumented, f"in /api/schema/ but not in docs/api.md: {undocumented}"
