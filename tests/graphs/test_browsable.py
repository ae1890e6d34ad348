"""The browsable API renders the graphs endpoints for a logged-in user (session auth)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def test_browsable_pages_render(browser, graph):
    graph_id = graph.graph.id
    node_id, edge_id = graph.nodes[0]["id"], graph.edges[0]["id"]
    for path in (
        "/api/graphs/",
        f"/api/graphs/{graph_id}/",
        f"/api/graphs/{graph_id}/nodes/",
        f"/api/graphs/{graph_id}/nodes/{node_id}/",
        f"/api/graphs/{graph_id}/edges/",
        f"/api/graphs/{graph_id}/edges/{edge_id}/",
        "/api/node-types/",
    ):
        response = browser.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, (path, response.content[:300])
        assert response["Content-Type"].startswith("text/html")
