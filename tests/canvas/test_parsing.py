"""Request bodies no endpoint can decode are a 400, never a 500."""

import pytest

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
