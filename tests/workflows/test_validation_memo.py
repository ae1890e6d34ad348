"""A graph's document is validated once per content: a new version of the same document (a
rename) is not validated again, a changed one is."""

import pytest
from cachetools import LRUCache
from django.db.models import F

from canvas.core.exceptions import ApplicationError
from graphs.models import Graph, Node
from tests.workflows.conftest import build_graph
from workflows import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def validations(monkeypatch):
    monkeypatch.setattr(services, "_valid_documents", LRUCache(maxsize=256))
    # Runs of a version already run take its document from there, validated or not.
    monkeypatch.setattr(services, "_runnable_documents", LRUCache(maxsize=10**6, getsizeof=len))
    calls = []
    real = services.validate_document

    def counted(nodes, edges):
        calls.append(len(nodes))
        return real(nodes, edges)

    monkeypatch.setattr(services, "validate_document", counted)
    return calls


def _new_version(graph, **node_changes):
    """A change of the graph as every path makes it: its version goes up with it."""
    for key, config in node_changes.items():
        Node.objects.filter(pk=graph.node_ids[key]).update(config=config)
    Graph.objects.filter(pk=graph.pk).update(version=F("version") + 1)
    graph.refresh_from_db()


def test_an_unchanged_document_is_validated_once_and_a_changed_one_again(user, validations):
    graph = build_graph(
        user,
        {"t": ("text", {"text": "hi"}), "o": ("output", {"name": "out"})},
        [("t", "text", "o", "value")],
    )
    services.execution_create(user=user, graph=graph, dispatch=False)
    services.execution_create(user=user, graph=graph, dispatch=False)
    assert validations == [2]
    _new_version(graph)  # a rename: the same document
    services.execution_create(user=user, graph=graph, dispatch=False)
    assert validations == [2]
    _new_version(graph, o={"name": "renamed"})
    execution = services.execution_create(user=user, graph=graph, dispatch=False)
    assert validations == [2, 2]
    assert [node["config"] for node in execution.snapshot["nodes"]][1] == {"name": "renamed"}


def test_an_invalid_graph_is_refused_every_time(user, validations):
    graph = build_graph(user, {"o": ("output", {"name": "out"})})  # its input is not connected
    for _ in range(2):
        with pytest.raises(ApplicationError) as refused:
            services.execution_create(user=user, graph=graph, dispatch=False)
        assert refused.value.code == "invalid_graph"
    assert validations == [1, 1]


def test_the_memo_is_bounded(user, validations, monkeypatch):
    monkeypatch.setattr(services, "_valid_documents", LRUCache(maxsize=2))
    graphs = [build_graph(user, {"t": ("text", {"text": str(i)})}) for i in range(3)]
    for graph in graphs:
        services.execution_create(user=user, graph=graph, dispatch=False)
    assert len(services._valid_documents) == 2  # noqa: SLF001
    _new_version(graphs[0])
    services.execution_create(user=user, graph=graphs[0], dispatch=False)  # evicted: again
    assert validations == [1, 1, 1, 1]
