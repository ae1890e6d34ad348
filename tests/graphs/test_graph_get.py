"""graph_get_for_user: the ORM's Graph in one plain statement; another user's is 404."""

import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from canvas.core.exceptions import NotFoundError
from graphs.models import Graph
from graphs.selectors import graph_get_for_user

pytestmark = pytest.mark.django_db


def fields(instance):
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_the_graph_is_the_orms_in_one_query(user, graph):
    expected = Graph.objects.get(pk=graph.graph.pk)
    with CaptureQueriesContext(connection) as queries:
        found = graph_get_for_user(user=user, graph_id=str(expected.pk))
    assert len(queries) == 1
    assert type(found) is Graph
    assert found == expected
    assert fields(found) == fields(expected)
    assert found.updated_at.tzinfo is not None
    assert not found._state.adding
    assert found._state.db == "default"
    # A plain model instance: it saves and reloads as any other.
    found.name = "renamed"
    found.save(update_fields=["name"])
    assert Graph.objects.get(pk=found.pk).name == "renamed"


def test_another_users_missing_or_malformed_graph_is_404(user, other_graph):
    for graph_id in (other_graph.graph.pk, uuid.uuid4(), "not-a-uuid", None):
        with pytest.raises(NotFoundError, match="No such graph."):
            graph_get_for_user(user=user, graph_id=graph_id)


def test_lock_still_reads_through_the_orm_under_the_lock(user, graph):
    with transaction.atomic():
        locked = graph_get_for_user(user=user, graph_id=graph.graph.pk, lock=True)
    assert fields(locked) == fields(Graph.objects.get(pk=graph.graph.pk))
