"""Request bodies no endpoint can decode are a 400, never a 500."""

import pytest

from canvas.core.parsers import json_loads_bounded, utf8_size_over

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("path", ["/api/graphs/", "/api/conversations/", "/api/keys/"])
def test_json_nested_too_deep_is_a_400_on_every_endpoint(api_client, path):
    response = api_client.post(path, DEEP, content_type="application/json")

    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/graphs/", "/api/conversations/", "/api/keys/"])
def test_malformed_json_is_a_400(api_client, path):
    response = api_client.post(path, '{"name": ', content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.parametrize(
    ("text", "over"),
    [("x" * 10, False), ("x" * 11, True), ("é" * 5, False), ("é" * 6, True), ("€€€€", True)],
)
def test_utf8_size_counts_bytes_not_characters(text, over):
    assert utf8_size_over(text, 10) is over
    assert utf8_size_over(text.encode(), 10) is over


def test_json_deeper_than_the_bound_is_a_value_error():
    assert json_loads_bounded("[" * 3 + "]" * 3, max_depth=3) == [[[]]]
    for raw in ("[" * 4 + "]" * 4, '{"a": {"b": {"c": {}}}}', "[" * 50_000, b"[[[[]]]]"):
        with pytest.raises(ValueError, match="nested too deeply"):
            json_loads_bounded(raw, max_depth=3)
