"""FieldsBuiltOnceMixin: fields built once per class, the same output as DRF's own path."""

import threading
from datetime import UTC, datetime

import pytest
from rest_framework import serializers

from canvas.core.serializers import FieldsBuiltOnceMixin
from workflows.models import ExecutionStatus
from workflows.serializers import (
    ExecutionListItemSerializer,
    ExecutionSerializer,
    ExecutionSummarySerializer,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def execution(user):
    from tests.workflows.conftest import build_graph
    from workflows.models import Execution

    graph = build_graph(user, {"o": ("output", {"name": "o"})}, [])
    return Execution.objects.create(
        owner=user,
        graph=graph,
        graph_version=graph.version,
        snapshot={"nodes": [], "edges": []},
        inputs={"x": "1"},
        status=ExecutionStatus.QUEUED,
        queued_at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    )


def drf_data(serializer_class, instance, **kwargs):
    """DRF's own path: the serializer's fields built on it before ``.data``."""
    serializer = serializer_class(instance, **kwargs)
    serializer.fields  # noqa: B018
    return serializer.data


@pytest.mark.parametrize("serializer_class", [ExecutionSummarySerializer, ExecutionSerializer])
def test_data_is_drfs_and_fields_are_built_once_per_class(execution, serializer_class):
    first = serializer_class(execution)
    data = first.data
    assert data == drf_data(serializer_class, execution)
    assert data.serializer is first  # the browsable API renders its form from it
    assert "fields" not in first.__dict__  # read through the class's reader
    reader = serializer_class._class_reader()
    assert serializer_class(execution).data == data
    assert serializer_class._class_reader() is reader


def test_each_class_reads_with_its_own_fields(execution):
    summary = ExecutionSummarySerializer(execution).data
    detail = ExecutionSerializer(execution).data
    assert "node_runs" not in summary
    assert detail["node_runs"] == []
    assert {k: v for k, v in detail.items() if k != "node_runs"} == summary


def test_with_a_context_or_nested_or_changed_fields_drf_builds_them(execution, rf):
    request = rf.get("/api/executions/")
    item = ExecutionListItemSerializer(execution, context={"request": request})
    assert item.data["url"].endswith(f"/api/executions/{execution.id}/")
    assert "fields" in item.__dict__

    listed = ExecutionSummarySerializer([execution], many=True).data
    assert listed == [drf_data(ExecutionSummarySerializer, execution)]

    narrowed = ExecutionSummarySerializer(execution)
    del narrowed.fields["inputs"]
    assert "inputs" not in narrowed.data


def test_threads_share_the_reader(execution):
    expected = drf_data(ExecutionSummarySerializer, execution)
    results, errors = [], []

    class Fresh(FieldsBuiltOnceMixin, serializers.ModelSerializer):
        class Meta(ExecutionSummarySerializer.Meta):
            pass

    def read():
        try:
            for _ in range(50):
                results.append(dict(Fresh(execution).data))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(result == expected for result in results)
