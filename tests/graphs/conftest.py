import pytest

from graphs.services import graph_create
from tests.graphs.factories import haiku_document


@pytest.fixture
def make_graph():
    """Create a graph for a user from a document (default: the haiku one)."""

    def make(owner, document=None):
        document = document or haiku_document()
        return graph_create(
            owner=owner,
            name=document["name"],
            description=document.get("description", ""),
            nodes=document["nodes"],
            edges=document["edges"],
        )

    return make


@pytest.fixture
def graph(user, make_graph):
    return make_graph(user)


@pytest.fixture
def other_graph(other_user, make_graph):
    return make_graph(other_user)
