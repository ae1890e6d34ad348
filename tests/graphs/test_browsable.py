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


def test_the_run_form_asks_for_inputs(browser, graph):
    response = browser.get(f"/api/graphs/{graph.graph.id}/executions/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    page = response.content.decode()
    assert "&quot;inputs&quot;" in page or 'name="inputs"' in page
    assert 'name="graph_version"' not in page  # not the summary's read-only fields


def test_the_key_form_starts_active(browser):
    response = browser.get("/api/keys/", HTTP_ACCEPT="text/html")

    page = response.content.decode()
    checkbox = page[page.index('name="is_active"') - 200 : page.index('name="is_active"') + 200]
    assert "checked" in checkbox
