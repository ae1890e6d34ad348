"""/api/graphs/: list, create, retrieve, PUT, PATCH, DELETE, validate."""

import uuid

import pytest

from graphs.models import Edge, Graph, Node
from tests.graphs.factories import edge, haiku_document, node

pytestmark = pytest.mark.django_db

URL = "/api/graphs/"


def detail(graph_id):
    return f"{URL}{graph_id}/"


def errors_of(response):
    body = response.json()
    assert set(body) >= {"detail", "code", "errors"}, body
    return body["errors"]


# --- list and create --------------------------------------------------------------------------


def test_list_shows_only_own_graphs_without_nodes(api_client, graph, other_graph):
    response = api_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [g["id"] for g in body["results"]] == [str(graph.graph.id)]
    assert "nodes" not in body["results"][0]
    assert body["results"][0]["version"] == 1


def test_anonymous_is_refused(anon_client, graph):
    assert anon_client.get(URL).status_code in (401, 403)
    assert anon_client.get(detail(graph.graph.id)).status_code in (401, 403)


def test_create_empty_graph(api_client, user):
    response = api_client.post(URL, {"name": "Empty"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Empty"
    assert body["nodes"] == []
    assert body["edges"] == []
    assert Graph.objects.get(pk=body["id"]).owner == user


def test_create_with_a_whole_document_keeps_client_ids(api_client):
    document = haiku_document()

    response = api_client.post(URL, document, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert [n["id"] for n in body["nodes"]] == [n["id"] for n in document["nodes"]]
    assert [e["id"] for e in body["edges"]] == [e["id"] for e in document["edges"]]
    stored = api_client.get(detail(body["id"])).json()
    assert {n["id"] for n in stored["nodes"]} == {n["id"] for n in document["nodes"]}
    assert stored["nodes"][0]["position"] == {"x": 0.0, "y": 0.0}


def test_create_generates_missing_ids(api_client):
    response = api_client.post(URL, {"name": "g", "nodes": [{"type": "text"}]}, format="json")

    assert response.status_code == 201
    assert uuid.UUID(response.json()["nodes"][0]["id"])


@pytest.mark.parametrize(
    ("payload", "key", "field"),
    [
        ({}, "graph", "name"),
        ({"name": "x" * 201}, "graph", "name"),
        ({"name": "a\u0000b"}, "graph", "name"),
        ({"name": "g", "nodes": "nope"}, "graph", "nodes"),
        ({"name": "g", "nodes": [{"type": "text", "label": "x" * 201}]}, "nodes[0]", "label"),
        ({"name": "g", "nodes": [{"type": "text", "config": []}]}, "nodes[0]", "config"),
        (
            {"name": "g", "nodes": [{"type": "text", "config": {"text": "a\u0000"}}]},
            "nodes[0]",
            "config",
        ),
        (
            {"name": "g", "nodes": [{"type": "text", "position": {"x": "NaN", "y": 0}}]},
            "nodes[0]",
            "position.x",
        ),
        ({"name": "g", "edges": [{"source": "not-a-uuid"}]}, "edges[0]", "source"),
    ],
)
def test_create_bad_input_answers_400_with_field_errors(api_client, payload, key, field):
    response = api_client.post(URL, payload, format="json")

    assert response.status_code == 400, response.content
    errors = errors_of(response)
    assert field in [entry["field"] for entry in errors[key]], errors


def test_node_errors_are_keyed_by_the_node_id(api_client):
    bad = node("text", label="x" * 201)
    response = api_client.post(URL, {"name": "g", "nodes": [bad]}, format="json")

    assert response.status_code == 400
    assert errors_of(response)[bad["id"]][0]["field"] == "label"


@pytest.mark.parametrize(
    "case",
    [
        "unknown_type",
        "bad_config",
        "unknown_port",
        "incompatible",
        "two_into_one",
        "cycle",
        "self_loop",
        "missing_node",
    ],
)
def test_structural_errors_are_refused_with_the_error_map(api_client, case):
    text = node("text", {"text": "hi"})
    llm = node("llm", {"provider": "groq", "model": "m"})
    tpl = node("template", {"template": "{a}"})
    tpl2 = node("template", {"template": "{a}"})
    http = node("http", {"url": "https://example.com"})
    nodes, edges, key, field = [text, llm, tpl, tpl2, http], [], None, None
    if case == "unknown_type":
        bad = node("teleport")
        nodes.append(bad)
        key, field = bad["id"], "type"
    elif case == "bad_config":
        llm["config"]["provider"] = "openai"
        key, field = llm["id"], "config.provider"
    elif case == "unknown_port":
        edges.append(e := edge(text, "text", llm, "nope"))
        key, field = e["id"], "target_port"
    elif case == "incompatible":
        edges.append(e := edge(http, "status", llm, "prompt"))  # number → text
        key, field = e["id"], "target_port"
    elif case == "two_into_one":
        edges.append(edge(text, "text", llm, "prompt"))
        edges.append(e := edge(tpl, "text", llm, "prompt"))
        key, field = e["id"], "target_port"
    elif case == "cycle":
        edges.append(edge(tpl, "text", tpl2, "a"))
        edges.append(edge(tpl2, "text", tpl, "a"))
        key, field = "graph", "edges"
    elif case == "self_loop":
        edges.append(e := edge(tpl, "text", tpl, "a"))
        key, field = e["id"], "target"
    elif case == "missing_node":
        edges.append(e := edge(text, "text", str(uuid.uuid4()), "a"))
        key, field = e["id"], "target"

    response = api_client.post(URL, {"name": "g", "nodes": nodes, "edges": edges}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_graph"
    errors = errors_of(response)
    assert field in [entry["field"] for entry in errors[key]], errors
    assert not Graph.objects.exists()


def test_incomplete_graph_saves(api_client):
    document = {"name": "draft", "nodes": [node("llm", {}), node("input", {"name": ""})]}

    response = api_client.post(URL, document, format="json")

    assert response.status_code == 201, response.content


def test_ids_of_another_graph_are_refused(api_client, other_graph):
    stolen = other_graph.nodes[0]["id"]
    document = {"name": "g", "nodes": [node("text", node_id=stolen)]}

    response = api_client.post(URL, document, format="json")

    assert response.status_code == 400
    assert errors_of(response)[stolen][0]["field"] == "id"


def test_duplicate_ids_in_a_document_are_refused(api_client):
    twin = node("text")
    response = api_client.post(URL, {"name": "g", "nodes": [twin, dict(twin)]}, format="json")

    assert response.status_code == 400
    assert errors_of(response)[twin["id"]][0]["field"] == "id"


def test_size_limits_answer_400(api_client, settings):
    settings.GRAPH_MAX_CONFIG_BYTES = 100
    big = node("text", {"text": "x" * 200})

    response = api_client.post(URL, {"name": "g", "nodes": [big]}, format="json")

    assert response.status_code == 400
    assert errors_of(response)[big["id"]][0]["field"] == "config"


def test_node_count_limit_answers_400(api_client, settings):
    settings.GRAPH_MAX_NODES = 2
    nodes = [node("text") for _ in range(3)]

    response = api_client.post(URL, {"name": "g", "nodes": nodes}, format="json")

    assert response.status_code == 400
    assert errors_of(response)["graph"][0]["field"] == "nodes"


# --- retrieve ----------------------------------------------------------------------------------


def test_retrieve_embeds_nodes_and_edges(api_client, graph):
    response = api_client.get(detail(graph.graph.id))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "description",
        "version",
        "created_at",
        "updated_at",
        "nodes",
        "edges",
    }
    assert {n["id"] for n in body["nodes"]} == {n["id"] for n in graph.nodes}
    assert set(body["nodes"][0]) == {"id", "type", "label", "position", "config"}
    assert set(body["edges"][0]) == {"id", "source", "source_port", "target", "target_port"}


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_users_graph_is_404_for_every_verb(api_client, other_graph, method):
    payload = {"name": "mine now", "nodes": [], "edges": []}

    response = getattr(api_client, method)(detail(other_graph.graph.id), payload, format="json")

    assert response.status_code == 404
    assert Graph.objects.get(pk=other_graph.graph.id).name == "Haiku"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_another_users_graph_is_404_even_with_a_bad_body(api_client, other_graph, method):
    response = getattr(api_client, method)(
        detail(other_graph.graph.id), {"name": ""}, format="json"
    )

    assert response.status_code == 404


def test_validate_another_users_graph_is_404(api_client, other_graph):
    assert api_client.post(f"{detail(other_graph.graph.id)}validate/").status_code == 404


@pytest.mark.parametrize("bad_id", ["nope", "123", "00000000-0000-0000-0000-00000000000g"])
def test_malformed_ids_are_404(api_client, bad_id):
    assert api_client.get(detail(bad_id)).status_code == 404
    assert api_client.delete(detail(bad_id)).status_code == 404
    assert api_client.get(f"{detail(bad_id)}nodes/").status_code == 404


def test_missing_graph_is_404(api_client):
    assert api_client.get(detail(uuid.uuid4())).status_code == 404


# --- PUT ---------------------------------------------------------------------------------------


def test_put_replaces_the_document_and_bumps_the_version(api_client, graph):
    document = api_client.get(detail(graph.graph.id)).json()
    topic, prompt, llm, out = document["nodes"]
    text = node("text", {"text": "a fixed topic"})
    document["name"] = "Renamed"
    prompt["position"] = {"x": 5.5, "y": 6.5}
    document["nodes"] = [text, prompt, llm, out]  # topic removed, text added
    document["edges"] = [edge(text, "text", prompt, "topic")] + [
        e for e in document["edges"] if e["source"] != topic["id"]
    ]

    response = api_client.put(detail(graph.graph.id), document, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    stored = api_client.get(detail(graph.graph.id)).json()
    assert stored["name"] == "Renamed"
    assert {n["id"] for n in stored["nodes"]} == {text["id"], prompt["id"], llm["id"], out["id"]}
    assert {e["id"] for e in stored["edges"]} == {e["id"] for e in document["edges"]}
    assert next(n for n in stored["nodes"] if n["id"] == prompt["id"])["position"] == {
        "x": 5.5,
        "y": 6.5,
    }
    assert not Node.objects.filter(pk=topic["id"]).exists()


def test_put_with_a_cycle_leaves_the_stored_graph_untouched(api_client, graph):
    before = api_client.get(detail(graph.graph.id)).json()
    document = {**before, "name": "broken"}
    a = node("template", {"template": "{x}"})
    b = node("template", {"template": "{x}"})
    document["nodes"] = [*before["nodes"][1:], a, b]  # also drops a node and its edge
    document["edges"] = [
        *[e for e in before["edges"] if e["source"] != before["nodes"][0]["id"]],
        edge(a, "text", b, "x"),
        edge(b, "text", a, "x"),
    ]

    response = api_client.put(detail(graph.graph.id), document, format="json")

    assert response.status_code == 400
    assert "cycle" in errors_of(response)["graph"][0]["message"]
    assert api_client.get(detail(graph.graph.id)).json() == before


def test_put_needs_nodes_and_edges(api_client, graph):
    response = api_client.put(detail(graph.graph.id), {"name": "x"}, format="json")

    assert response.status_code == 400
    assert {e["field"] for e in errors_of(response)["graph"]} == {"nodes", "edges"}


def test_put_may_carry_the_version_read_only(api_client, graph):
    document = api_client.get(detail(graph.graph.id)).json()
    document["version"] = 99
    document["description"] = "changed"

    response = api_client.put(detail(graph.graph.id), document, format="json")

    assert response.json()["version"] == 2


def test_unchanged_put_keeps_the_version(api_client, graph):
    document = api_client.get(detail(graph.graph.id)).json()

    assert api_client.put(detail(graph.graph.id), document, format="json").json()["version"] == 1


def test_put_edge_may_move_to_another_input_in_the_same_save(api_client, graph):
    document = api_client.get(detail(graph.graph.id)).json()
    # Swap which edge feeds the LLM prompt: delete one, add another into the same input.
    llm_id = document["nodes"][2]["id"]
    text = node("text", {"text": "x"})
    document["nodes"].append(text)
    document["edges"] = [e for e in document["edges"] if e["target"] != llm_id]
    document["edges"].append(edge(text, "text", llm_id, "prompt"))

    response = api_client.put(detail(graph.graph.id), document, format="json")

    assert response.status_code == 200, response.content
    assert Edge.objects.filter(target_id=llm_id).get().source_id == uuid.UUID(text["id"])


# --- PATCH, DELETE -----------------------------------------------------------------------------


def test_patch_changes_own_fields_only(api_client, graph):
    response = api_client.patch(detail(graph.graph.id), {"description": "new"}, format="json")

    assert response.status_code == 200
    assert response.json()["description"] == "new"
    assert response.json()["version"] == 2
    assert Node.objects.filter(graph=graph.graph).count() == 4


def test_patch_refuses_a_blank_name(api_client, graph):
    response = api_client.patch(detail(graph.graph.id), {"name": ""}, format="json")

    assert response.status_code == 400
    assert errors_of(response)["graph"][0]["field"] == "name"


def test_patch_refuses_document_fields(api_client, graph):
    response = api_client.patch(detail(graph.graph.id), {"nodes": []}, format="json")

    assert response.status_code == 400
    assert errors_of(response)["graph"][0]["field"] == "nodes"


def test_delete_removes_graph_nodes_and_edges(api_client, graph):
    response = api_client.delete(detail(graph.graph.id))

    assert response.status_code == 204
    assert not Graph.objects.exists()
    assert not Node.objects.exists()
    assert not Edge.objects.exists()


# --- validate ----------------------------------------------------------------------------------


def test_validate_a_complete_graph(api_client, graph):
    response = api_client.post(f"{detail(graph.graph.id)}validate/")

    assert response.status_code == 200
    assert response.json() == {"valid": True, "errors": {}}


def test_validate_reports_incomplete_nodes_per_node(api_client):
    llm = node("llm", {"provider": "groq"})
    tpl = node("template", {"template": "{a} {b}"})
    dup1, dup2 = node("output", {"name": "x"}), node("output", {"name": "x"})
    document = {
        "name": "draft",
        "nodes": [llm, tpl, dup1, dup2],
        "edges": [edge(tpl, "text", llm, "prompt"), edge(llm, "text", dup1, "value")],
    }
    graph_id = api_client.post(URL, document, format="json").json()["id"]

    response = api_client.post(f"{detail(graph_id)}validate/")

    body = response.json()
    assert body["valid"] is False
    assert body["errors"][llm["id"]] == [
        {"field": "config.model", "message": "This field is required."}
    ]
    assert {e["field"] for e in body["errors"][tpl["id"]]} == {"inputs.a", "inputs.b"}
    assert {e["field"] for e in body["errors"][dup2["id"]]} == {"inputs.value", "config.name"}
    # The optional `system` input of the LLM is not reported.
    assert "inputs.system" not in str(body["errors"])


# --- hostile input -----------------------------------------------------------------------------


def post_raw(client, body):
    return client.generic("POST", URL, body, content_type="application/json")


def test_json_nested_too_deep_for_the_parser_is_400(api_client):
    body = '{"name": "g", "nodes": [{"type": "text", "config": {"text": ' + "[" * 50_000
    body += "]" * 50_000 + "}}]}"

    response = post_raw(api_client, body)

    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


def test_deep_config_is_a_field_error(api_client):
    deep = "[" * 200 + "]" * 200
    body = '{"name": "g", "nodes": [{"type": "input", "config": {"name": "a", "default": '
    response = post_raw(api_client, body + deep + "}}]}")

    assert response.status_code == 400
    assert "Nested deeper" in errors_of(response)["nodes[0]"][0]["message"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"x": 1' + "0" * 400 + ', "y": 0}', "position.x"),
        ('{"x": 1e400, "y": 0}', "position.x"),
    ],
)
def test_numbers_out_of_float_range_are_400(api_client, raw, field):
    response = post_raw(
        api_client, '{"name": "g", "nodes": [{"type": "text", "position": ' + raw + "}]}"
    )

    assert response.status_code == 400
    assert errors_of(response)["nodes[0]"][0]["field"] == field


def test_infinite_number_in_config_is_400(api_client):
    body = '{"name": "g", "nodes": [{"type": "input", "config": {"name": "a", "default": 1e999}}]}'

    response = post_raw(api_client, body)

    assert response.status_code == 400
    assert errors_of(response)["nodes[0]"][0]["field"] == "config"


def test_nul_in_a_config_key_or_port_name_is_400(api_client):
    key = node("input", {"name": "a", "default": {"k\u0000": 1}})
    response = api_client.post(URL, {"name": "g", "nodes": [key]}, format="json")
    assert response.status_code == 400

    a, b = node("text"), node("output")
    bad_edge = edge(a, "te\u0000xt", b, "value")
    response = api_client.post(
        URL, {"name": "g", "nodes": [a, b], "edges": [bad_edge]}, format="json"
    )
    assert response.status_code == 400
    assert errors_of(response)[bad_edge["id"]][0]["field"] == "source_port"


@pytest.mark.parametrize("body", ["[]", '"text"', "null", "{"])
def test_bodies_that_are_not_objects_are_400(api_client, body):
    assert post_raw(api_client, body).status_code == 400


def test_node_items_that_are_not_objects_are_400(api_client):
    response = api_client.post(URL, {"name": "g", "nodes": ["x", 3]}, format="json")

    assert response.status_code == 400
    assert set(errors_of(response)) == {"nodes[0]", "nodes[1]"}


def test_validate_reports_structural_errors_of_a_stored_graph_too(api_client, graph, monkeypatch):
    # A graph saved while a type existed, read after it is gone (a removed plugin, say).
    from graphs.registry import registry

    monkeypatch.delitem(registry._types, "llm")
    llm_id = graph.nodes[2]["id"]

    body = api_client.post(f"{detail(graph.graph.id)}validate/").json()

    assert body["valid"] is False
    assert body["errors"][llm_id] == [{"field": "type", "message": "Unknown node type 'llm'."}]


def test_a_patch_that_changes_nothing_keeps_the_version_and_publishes_nothing(
    api_client, graph, django_capture_on_commit_callbacks
):
    url = f"/api/graphs/{graph.graph.id}/"
    before = api_client.get(url).json()

    with django_capture_on_commit_callbacks(execute=False) as published:
        response = api_client.patch(
            url, {"name": before["name"], "description": before["description"]}, format="json"
        )

    assert response.status_code == 200
    assert response.json()["version"] == before["version"]
    assert published == []  # no graph.updated
    with django_capture_on_commit_callbacks(execute=False) as published:
        changed = api_client.patch(url, {"name": "Renamed"}, format="json").json()
    assert changed["version"] == before["version"] + 1
    assert len(published) == 1


@pytest.mark.parametrize("value", [123, 1.5, True, ["a"], {"a": 1}])
def test_a_name_that_is_not_text_is_a_400_not_coerced(api_client, graph, value):
    response = api_client.post("/api/graphs/", {"name": value}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["graph"][0]["field"] == "name"

    response = api_client.patch(f"/api/graphs/{graph.graph.id}/", {"name": value}, format="json")
    assert response.status_code == 400
