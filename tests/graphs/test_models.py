"""The database itself refuses a self-loop and a second edge into one input."""

import pytest
from django.db import IntegrityError, transaction

from graphs.models import Edge, Graph, Node

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_nodes(user):
    graph = Graph.objects.create(owner=user, name="g")
    a = Node.objects.create(graph=graph, type="template", config={"template": "{x}"})
    b = Node.objects.create(graph=graph, type="template", config={"template": "{x}"})
    return graph, a, b


def test_self_loop_is_refused_by_the_database(two_nodes):
    graph, a, _ = two_nodes
    with pytest.raises(IntegrityError), transaction.atomic():
        Edge.objects.create(graph=graph, source=a, source_port="text", target=a, target_port="x")


def test_second_edge_into_one_input_is_refused_by_the_database(two_nodes):
    graph, a, b = two_nodes
    Edge.objects.create(graph=graph, source=a, source_port="text", target=b, target_port="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        Edge.objects.create(graph=graph, source=a, source_port="text", target=b, target_port="x")


def test_client_chosen_uuid_is_kept(two_nodes):
    graph, _, _ = two_nodes
    chosen = "3f2b8c1e-8d5a-4c1e-9b7a-2f6d5e4c3b2a"
    assert str(Node.objects.create(id=chosen, graph=graph, type="text").pk) == chosen
