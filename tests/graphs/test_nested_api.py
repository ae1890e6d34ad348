"""/api/graphs/{id}/nodes/ and /edges/: nested CRUD, scoped to the graph's owner."""

import uuid

import pytest

from graphs.models import Edge, Graph, Node
from tests.graphs.factories import edge, node

pytestmark = pytest.mark.django_db


def nodes_url(graph_id):
    return f"/api/graphs/{graph_id}/nodes/"


def edges_url(graph_id):
    return f"/api/graphs/{graph_id}/edges/"


def version(saved):
    return Graph.objects.get(pk=saved.graph.id).version


# --- nodes ---------------------------------------------------------------------------------------


def test_list_nodes_paginated(api_client, graph):
    response = api_client.get(nodes_url(graph.graph.id))

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert {n["id"] for n in body["results"]} == {n["id"] for n in graph.nodes}


def test_create_node_with_client_id_bumps_version(api_client, graph):
    new = node("text", {"text": "hello"}, label="Greeting")

    response = api_client.post(nodes_url(graph.graph.id), new, format="json")

    assert response.status_code == 201, response.content
    assert response.json() == new | {"position": {"x": 0.0, "y": 0.0}}
    assert version(graph) == 2


def test_create_node_bad_input(api_client, graph):
    response = api_client.post(
        nodes_url(graph.graph.id), {"type": "llm", "config": {"provider": "x"}}, format="json"
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    [key] = errors
    assert errors[key][0]["field"] == "config.provider"
    assert version(graph) == 1


def test_create_node_missing_type_is_a_field_error(api_client, graph):
    response = api_client.post(nodes_url(graph.graph.id), {"label": "x"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["node"][0]["field"] == "type"


def test_create_node_with_a_taken_id_is_refused(api_client, graph, other_graph):
    taken = other_graph.nodes[0]["id"]

    response = api_client.post(
        nodes_url(graph.graph.id), node("text", node_id=taken), format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][taken][0]["field"] == "id"


def test_retrieve_update_patch_node(api_client, graph):
    prompt = graph.nodes[1]
    url = f"{nodes_url(graph.graph.id)}{prompt['id']}/"

    assert api_client.get(url).json() == prompt | {"position": {"x": 0.0, "y": 0.0}}

    response = api_client.patch(url, {"label": "Renamed", "position": {"x": 1, "y": 2}})
    assert response.status_code == 200, response.content
    assert response.json()["label"] == "Renamed"
    assert response.json()["config"] == prompt["config"]
    assert version(graph) == 2

    full = {"type": "template", "config": {"template": "About {topic}!"}}
    response = api_client.put(url, full, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["label"] == ""
    assert response.json()["position"] == {"x": 0.0, "y": 0.0}
    assert version(graph) == 3


def test_node_update_that_breaks_an_edge_is_refused(api_client, graph):
    prompt = graph.nodes[1]
    url = f"{nodes_url(graph.graph.id)}{prompt['id']}/"

    # The incoming edge goes into {topic}; removing the placeholder removes its port.
    response = api_client.patch(url, {"config": {"template": "No variables"}}, format="json")

    assert response.status_code == 400
    edge_in = graph.edges[0]["id"]
    assert response.json()["errors"][edge_in][0]["field"] == "target_port"
    assert Node.objects.get(pk=prompt["id"]).config == prompt["config"]


def test_delete_node_deletes_its_edges(api_client, graph):
    prompt = graph.nodes[1]

    response = api_client.delete(f"{nodes_url(graph.graph.id)}{prompt['id']}/")

    assert response.status_code == 204
    assert Edge.objects.filter(graph=graph.graph).count() == 1
    assert version(graph) == 2


@pytest.mark.parametrize("method", ["get", "post"])
def test_nodes_of_another_users_graph_are_404(api_client, other_graph, method):
    response = getattr(api_client, method)(nodes_url(other_graph.graph.id), {"type": "text"})

    assert response.status_code == 404
    assert Node.objects.filter(graph=other_graph.graph).count() == 4


def test_bad_node_body_on_another_users_graph_is_still_404(api_client, other_graph):
    response = api_client.post(nodes_url(other_graph.graph.id), {}, format="json")

    assert response.status_code == 404


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_users_node_is_404_for_every_verb(api_client, graph, other_graph, method):
    theirs = other_graph.nodes[0]["id"]
    payload = {"type": "text"}

    # Through their graph and through mine: both 404.
    for graph_id in (other_graph.graph.id, graph.graph.id):
        url = f"{nodes_url(graph_id)}{theirs}/"
        assert getattr(api_client, method)(url, payload, format="json").status_code == 404
    assert Node.objects.filter(pk=theirs).exists()


def test_malformed_node_id_is_404(api_client, graph):
    assert api_client.get(f"{nodes_url(graph.graph.id)}nope/").status_code == 404
    assert api_client.get(f"{nodes_url(graph.graph.id)}{uuid.uuid4()}/").status_code == 404


# --- edges ---------------------------------------------------------------------------------------


def test_list_edges(api_client, graph):
    response = api_client.get(edges_url(graph.graph.id))

    assert response.status_code == 200
    assert response.json()["count"] == 3


def test_create_edge_and_delete_it(api_client, graph):
    llm, out = graph.nodes[2], graph.nodes[3]
    system = node("text", {"text": "Be brief."})
    api_client.post(nodes_url(graph.graph.id), system, format="json")
    new = edge(system, "text", llm, "system")

    response = api_client.post(edges_url(graph.graph.id), new, format="json")

    assert response.status_code == 201, response.content
    assert response.json() == new
    assert version(graph) == 3
    assert api_client.get(f"{edges_url(graph.graph.id)}{new['id']}/").json() == new

    response = api_client.delete(f"{edges_url(graph.graph.id)}{new['id']}/")
    assert response.status_code == 204
    assert not Edge.objects.filter(pk=new["id"]).exists()
    assert version(graph) == 4
    assert out  # unchanged


@pytest.mark.parametrize("case", ["cycle", "second_into_input", "cross_graph", "bad_port"])
def test_create_edge_structural_errors(api_client, graph, other_graph, case):
    topic, prompt, llm, out = graph.nodes
    if case == "cycle":
        key, field = "graph", "edges"
        # A free input on the prompt, so that the cycle is the only problem.
        api_client.patch(
            f"{nodes_url(graph.graph.id)}{prompt['id']}/",
            {"config": {"template": "{topic} {more}"}},
            format="json",
        )
        new = edge(llm, "text", prompt, "more")
    elif case == "second_into_input":
        new = edge(topic, "value", llm, "prompt")
        key, field = None, "target_port"
    elif case == "cross_graph":
        new = edge(other_graph.nodes[0], "value", prompt, "topic")
        key, field = None, "source"
    else:
        new = edge(topic, "nope", out, "value")
        key, field = None, "source_port"
    before = version(graph)

    response = api_client.post(edges_url(graph.graph.id), new, format="json")

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert field in [e["field"] for e in errors[key or new["id"]]], errors
    assert version(graph) == before
    assert not Edge.objects.filter(pk=new["id"]).exists()


def test_create_edge_bad_input(api_client, graph):
    response = api_client.post(edges_url(graph.graph.id), {"source": "x"}, format="json")

    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]["edge"]}
    assert fields == {"source", "source_port", "target", "target_port"}


def test_update_edge(api_client, graph):
    topic, prompt, llm, out = graph.nodes
    feed = graph.edges[2]  # llm.text → out.value
    url = f"{edges_url(graph.graph.id)}{feed['id']}/"

    response = api_client.patch(url, {"source": topic["id"], "source_port": "value"})

    assert response.status_code == 200, response.content
    assert response.json()["source"] == topic["id"]
    bad = api_client.patch(url, {"target_port": "nope"})
    assert bad.status_code == 400
    assert bad.json()["errors"][feed["id"]][0]["field"] == "target_port"


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_users_edge_is_404_for_every_verb(api_client, other_graph, method):
    theirs = other_graph.edges[0]
    url = f"{edges_url(other_graph.graph.id)}{theirs['id']}/"

    assert getattr(api_client, method)(url, theirs, format="json").status_code == 404
    assert Edge.objects.filter(pk=theirs["id"]).exists()


def test_edges_of_another_users_graph_are_404(api_client, other_graph):
    assert api_client.get(edges_url(other_graph.graph.id)).status_code == 404
    assert api_client.post(edges_url(other_graph.graph.id), {}, format="json").status_code == 404


# --- node types ----------------------------------------------------------------------------------


def test_node_types_is_one_unpaginated_list(api_client):
    response = api_client.get("/api/node-types/")

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    by_type = {entry["type"]: entry for entry in body}
    assert set(by_type) == {
        "input",
        "text",
        "template",
        "llm",
        "http",
        "extract",
        "condition",
        "output",
    }
    assert set(by_type["llm"]) >= {"type", "label", "inputs", "outputs", "config_schema"}
    assert by_type["template"]["dynamic_inputs"] is True
    assert by_type["llm"]["config_schema"]["required"] == ["provider", "model"]
    assert by_type["http"]["outputs"][0] == {
        "name": "status",
        "type": "number",
        "required": True,
        "description": "The response status code.",
    }


def test_node_types_need_auth(anon_client):
    assert anon_client.get("/api/node-types/").status_code in (401, 403)
