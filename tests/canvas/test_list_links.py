"""Items of every list whose objects have their own endpoint carry `url`, the absolute link to
it: it resolves to that endpoint, which answers 200 for the owner (and 404 for anyone else);
the schema declares it; the browsable API shows it as a link."""

from urllib.parse import urlsplit

import pytest
from django.urls import resolve
from django.utils import timezone

from chat.services import conversation_create
from graphs.services import graph_create
from integrations.keys import api_key_create
from tests.graphs.factories import haiku_document
from workflows.models import Execution

pytestmark = pytest.mark.django_db

# list → (list path, the detail route's name, the detail path of an item)
LISTS = {
    "graphs": ("/api/graphs/", "graph-detail", "/api/graphs/{id}/"),
    "nodes": (
        "/api/graphs/{graph}/nodes/",
        "graph-node-detail",
        "/api/graphs/{graph}/nodes/{id}/",
    ),
    "edges": (
        "/api/graphs/{graph}/edges/",
        "graph-edge-detail",
        "/api/graphs/{graph}/edges/{id}/",
    ),
    "executions": ("/api/executions/", "execution-detail", "/api/executions/{id}/"),
    "graph executions": (
        "/api/graphs/{graph}/executions/",
        "execution-detail",
        "/api/executions/{id}/",
    ),
    "conversations": ("/api/conversations/", "conversation-detail", "/api/conversations/{id}/"),
    "keys": ("/api/keys/", "apikey-detail", "/api/keys/{id}/"),
}


@pytest.fixture
def owned(user):
    """One object of each kind, owned by `user`; answers the ids the paths need."""
    document = haiku_document()
    graph = graph_create(
        owner=user, name="g", description="", nodes=document["nodes"], edges=document["edges"]
    ).graph
    Execution.objects.create(
        owner=user,
        graph=graph,
        graph_version=graph.version,
        snapshot={"nodes": [], "edges": []},
        status="succeeded",
        queued_at=timezone.now(),
    )
    conversation_create(owner=user, provider="ollama", model="llama3.2")
    api_key_create(owner=user, provider="groq", secret="gsk_" + "a" * 40)
    return {"graph": str(graph.id)}


@pytest.mark.parametrize("name", LISTS)
def test_each_list_item_links_to_its_detail_endpoint(name, owned, api_client, other_api_client):
    list_path, route, detail_path = LISTS[name]

    response = api_client.get(list_path.format(**owned))

    assert response.status_code == 200
    items = response.json()["results"]
    assert items
    for item in items:
        url = item["url"]
        assert url == "http://testserver" + detail_path.format(**owned, id=item["id"])
        assert resolve(urlsplit(url).path).url_name == route
        detail = api_client.get(url)
        assert detail.status_code == 200, (url, detail.content[:200])
        assert detail.json()["id"] == item["id"]
        assert other_api_client.get(url).status_code == 404


def test_the_link_follows_the_host_the_client_used(owned, api_client):
    # Absolute, as DRF's `next` and `previous` are: built from the request.
    response = api_client.get("/api/graphs/", HTTP_HOST="localhost:8000")

    assert response.json()["results"][0]["url"].startswith("http://localhost:8000/api/graphs/")


def test_the_schema_declares_url_on_every_list_item(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]

    def resolve_ref(node):
        while "$ref" in node:
            node = components[node["$ref"].rsplit("/", 1)[-1]]
        return node

    for name, (list_path, _route, _detail) in LISTS.items():
        path = list_path.replace("{graph}", "{graph_id}")
        answer = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        page = resolve_ref(answer["schema"])
        item = resolve_ref(page["properties"]["results"]["items"])
        url = item["properties"].get("url")
        assert url is not None, name
        assert url["type"] == "string"
        assert url["format"] == "uri"
        assert url["readOnly"] is True
        assert "url" in item.get("required", []), name


def test_the_browsable_api_shows_the_link(owned, client, user):
    client.force_login(user)

    response = client.get("/api/graphs/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    href = f'href="http://testserver/api/graphs/{owned["graph"]}/"'
    assert href in response.content.decode()
