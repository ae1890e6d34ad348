"""A graph run again unchanged is not validated again; any change is."""

import pytest

from canvas.core.exceptions import ApplicationError
from graphs.models import Node
from tests.workflows.conftest import build_graph
from workflows import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def validations(monkeypatch):
    monkeypatch.setattr(services, "_valid_documents", services.OrderedDict())
    calls = []
    real = services.validate_document

    def counted(nodes, edges):
        calls.append(len(nodes))
        return real(nodes, edges)

    monkeypatch.setattr(services, "validate_document", counted)
    return calls


def test_an_unchanged_graph_is_validated_once_and_a_changed_one_again(user, validations):
    graph = build_graph(
        user,
        {"t": ("text", {"text": "hi"}), "o": ("output", {"name": "out"})},
        [("t", "text", "o", "value")],
    )
    services.execution_create(user=user, graph=graph, dispatch=False)
    services.execution_create(user=user, graph=graph, dispatch=False)
    assert validations == [2]
    # A change made behind the services' back (no version bump) is still seen: the memo is
    # keyed by the document itself.
    Node.objects.filter(pk=graph.node_ids["o"]).update(config={"name": "renamed"})
    services.execution_create(user=user, graph=graph, dispatch=False)
    assert validations == [2, 2]


def test_an_invalid_graph_is_refused_every_time(user, validations):
    graph = build_graph(user, {"o": ("output", {"name": "out"})})  # its input is not connected
    for _ in range(2):
        with pytest.raises(ApplicationError) as refused:
            services.execution_create(user=user, graph=graph, dispatch=False)
        assert refused.value.code == "invalid_graph"
    assert validations == [1, 1]


def test_the_memo_is_bounded(user, validations, monkeypatch):
    monkeypatch.setattr(services, "VALID_DOCUMENTS_KEPT", 2)
    graphs = [build_graph(user, {"t": ("text", {"text": str(i)})}) for i in range(3)]
    for graph in graphs:
        services.execution_create(user=user, graph=graph, dispatch=False)
    assert len(services._valid_documents) == 2  # noqa: SLF001
    services.execution_create(user=user, graph=graphs[0], dispatch=False)  # evicted: again
    assert validations == [1, 1, 1, 1]
