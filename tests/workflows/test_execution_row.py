"""A new run's row is written without the ORM's save (workflows/services.py): what is stored
is what ``save()`` would have stored, and the instance returned is the stored row."""

import pytest

from tests.workflows.conftest import build_graph
from workflows import services
from workflows.models import Execution

pytestmark = pytest.mark.django_db


def test_the_insert_names_every_column_of_the_model():
    # A new field must be written by the insert too: with a database default it would
    # otherwise be stored silently as that default.
    assert [name for name, _kind in services.EXECUTION_COLUMNS] == [
        field.attname for field in Execution._meta.concrete_fields
    ]


def test_the_stored_row_is_the_instance_returned(user):
    graph = build_graph(
        user,
        {"i": ("input", {"name": "x"}), "o": ("output", {"name": "out"})},
        [("i", "value", "o", "value")],
    )

    created = services.execution_create(user=user, graph=graph, inputs={"x": "é ✓"}, dispatch=False)

    stored = Execution.objects.get(pk=created.pk)
    fields = [field.attname for field in Execution._meta.concrete_fields]
    assert [getattr(stored, f) for f in fields] == [getattr(created, f) for f in fields]
    assert stored.created_at == stored.updated_at == stored.queued_at
    assert stored.inputs == {"x": "é ✓"}
    assert stored.snapshot["nodes"]
    assert stored.outputs == {}
    assert (stored.status, stored.error, stored.worker) == ("queued", "", "")
    assert stored.started_at is stored.finished_at is stored.heartbeat_at is None
    assert not created._state.adding
    # A saved instance saves as an update, not a second insert.
    created.error = "x"
    created.save(update_fields=["error"])
    assert Execution.objects.get(pk=created.pk).error == "x"
