"""A run of a graph version already run reads the graph's row only; a change, through any of
the API's paths, bumps the version and is what the next run runs."""

import pytest
from cachetools import LRUCache
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from graphs.models import Edge, Node
from tests.workflows.conftest import build_graph, greeting_graph, wait_for
from workflows import services
from workflows.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def documents(monkeypatch):
    cache = LRUCache(maxsize=services.RUNNABLE_DOCUMENTS_CHARS, getsizeof=lambda d: len(d[1]))
    monkeypatch.setattr(services, "_runnable_documents", cache)
    return cache


@pytest.fixture
def graph(user):
    return greeting_graph(user)


def start(client, graph, who="ann") -> Execution:
    response = client.post(
        f"/api/graphs/{graph.id}/executions/", {"inputs": {"who": who}}, format="json"
    )
    assert response.status_code == 202, response.content
    return wait_for(Execution.objects.get(pk=response.json()["id"]))


def node_and_edge_reads(queries) -> list[str]:
    tables = (Node._meta.db_table, Edge._meta.db_table)
    return [q["sql"] for q in queries if any(table in q["sql"] for table in tables)]


def test_a_second_run_of_a_version_does_not_read_its_nodes_and_edges(api_client, graph):
    first = start(api_client, graph)
    with CaptureQueriesContext(connection) as queries:
        second = start(api_client, graph, who="bob")
    assert node_and_edge_reads(queries) == []
    assert second.snapshot == first.snapshot
    assert (second.status, second.outputs) == ("succeeded", {"greeting": "hi bob"})


def test_a_change_through_the_api_is_what_the_next_run_runs(api_client, graph):
    start(api_client, graph)
    tpl = graph.node_ids["tpl"]
    response = api_client.patch(
        f"/api/graphs/{graph.id}/nodes/{tpl}/",
        {"config": {"template": "hello {who}"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    changed = start(api_client, graph)
    assert changed.graph_version == graph.version + 1
    assert changed.outputs == {"greeting": "hello ann"}
    # A node added and wired in (three more versions), then the graph run again.
    node = api_client.post(
        f"/api/graphs/{graph.id}/nodes/",
        {"type": "output", "label": "again", "config": {"name": "again"}},
        format="json",
    ).json()
    edge = api_client.post(
        f"/api/graphs/{graph.id}/edges/",
        {"source": tpl, "source_port": "text", "target": node["id"], "target_port": "value"},
        format="json",
    )
    assert edge.status_code == 201, edge.content
    grown = start(api_client, graph)
    assert grown.outputs == {"greeting": "hello ann", "again": "hello ann"}


def test_a_kept_document_is_checked_against_the_limits_in_force(api_client, graph):
    start(api_client, graph)
    with override_settings(GRAPH_MAX_NODES=2):
        response = api_client.post(
            f"/api/graphs/{graph.id}/executions/", {"inputs": {"who": "x"}}, format="json"
        )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_graph"


def test_an_invalid_graph_is_not_kept(api_client, user, documents):
    graph = build_graph(user, {"out": ("output", {"name": "o"})})  # its input is unconnected
    for _ in range(2):
        response = api_client.post(
            f"/api/graphs/{graph.id}/executions/", {"inputs": {}}, format="json"
        )
        assert response.status_code == 400, response.content
    assert len(documents) == 0


def test_a_document_over_a_quarter_of_the_bound_is_run_and_not_kept(
    api_client, graph, documents, monkeypatch
):
    monkeypatch.setattr(services, "RUNNABLE_DOCUMENTS_CHARS", 400)
    assert start(api_client, graph).status == "succeeded"
    assert len(documents) == 0
    monkeypatch.setattr(services, "RUNNABLE_DOCUMENTS_CHARS", 10**6)
    start(api_client, graph)
    assert len(documents) == 1
