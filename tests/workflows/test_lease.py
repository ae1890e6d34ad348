"""The claim of a run and its owner's fenced writes (``workflows.lease``)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from graphs.models import Graph
from tests.workflows.conftest import build_graph
from workflows.lease import (
    claim_execution,
    claim_queued_statement,
    owned_execution_statement,
    read_queued,
)
from workflows.models import Execution, ExecutionEvent
from workflows.rowwriter import Writes
from workflows.services import execution_create

pytestmark = pytest.mark.django_db


def claim_queued(execution_id, **fields) -> bool:
    """The claim as the engine's first flush makes it: the fence of its writes (none here)."""
    return Writes(fence=claim_queued_statement(execution_id, **fields)).run()


def update_owned_execution(execution_id, **fields) -> bool:
    """The owner's fenced write as its flush makes it (with no other rows here)."""
    return Writes(fence=owned_execution_statement(execution_id, **fields)).run()


@pytest.fixture(params=["returning", "update-then-select"])
def claim(request, monkeypatch):
    """Claims by both statements: one UPDATE … RETURNING, or (SQLite before 3.35) UPDATE then
    SELECT. Only the claim sees the feature switched off: Django's own inserts need it."""

    def claim(execution, worker, *, stale_after=30):
        now = timezone.now()
        with monkeypatch.context() as patch:
            if request.param == "update-then-select":
                patch.setattr(connection.features, "can_return_columns_from_insert", False)
            return claim_execution(
                execution.id, worker=worker, now=now, stale=now - timedelta(seconds=stale_after)
            )

    return claim


@pytest.fixture
def queued(user):
    graph = build_graph(
        user,
        {"i": ("input", {"name": "x"}), "o": ("output", {"name": "o"})},
        [("i", "value", "o", "value")],
    )
    return execution_create(user=user, graph=graph, inputs={"x": "hi"}, dispatch=False)


def test_a_queued_run_is_claimed_once_with_what_it_needs(claim, queued, user):
    claimed = claim(queued, "w1")
    assert claimed is not None
    assert claimed.owner_id == user.pk
    assert claimed.inputs == {"x": "hi"}
    assert claimed.snapshot == queued.snapshot
    assert claimed.cancel_requested is False
    assert claimed.last_seq == 1  # execution.queued
    assert claim(queued, "w2") is None
    queued.refresh_from_db()
    assert (queued.status, queued.worker) == ("running", "w1")
    assert queued.started_at is not None
    assert queued.heartbeat_at is not None


def test_a_running_run_is_taken_over_only_when_its_heartbeat_is_stale(claim, queued):
    assert claim(queued, "w1") is not None
    first_start = Execution.objects.get(pk=queued.pk).started_at
    assert claim(queued, "w2") is None
    Execution.objects.filter(pk=queued.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=60), cancel_requested=True
    )
    taken = claim(queued, "w2")
    assert taken is not None
    assert taken.cancel_requested is True
    queued.refresh_from_db()
    assert queued.worker == "w2"
    assert queued.started_at == first_start  # the run keeps its first start


def test_an_ended_run_is_not_claimed(claim, queued):
    Execution.objects.filter(pk=queued.pk).update(status="cancelled")
    assert claim(queued, "w1") is None


def test_only_the_owner_writes_and_only_while_the_run_is_running(claim, queued):
    assert claim(queued, "w1") is not None
    now = timezone.now()
    assert update_owned_execution(queued.id, worker="w2", heartbeat_at=now) is False
    assert update_owned_execution(
        queued.id, worker="w1", status="succeeded", outputs={"o": "hi"}, finished_at=now
    )
    queued.refresh_from_db()
    assert (queued.status, queued.outputs, queued.finished_at) == ("succeeded", {"o": "hi"}, now)
    assert update_owned_execution(queued.id, worker="w1", heartbeat_at=now) is False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_cascading_delete_waits_for_the_owners_flush(user):
    """Given an owner mid-flush (its fenced UPDATE done, its events not yet written), deleting
    the graph waits for the flush instead of deleting the run's events under it and failing at
    commit on the rows the flush then adds (PostgreSQL checks foreign keys at commit)."""
    graph = build_graph(user, {"t": ("text", {"text": "hi"})}, [])
    execution = execution_create(user=user, graph=graph, inputs={}, dispatch=False)
    now = timezone.now()
    assert claim_execution(execution.id, worker="w1", now=now, stale=now) is not None
    flushing, deleted, failures = threading.Event(), threading.Event(), []

    def delete_graph():
        try:
            flushing.wait(5)
            Graph.objects.get(pk=graph.pk).delete()
        except Exception as exc:  # noqa: BLE001 - the failure is the assertion below
            failures.append(exc)
        finally:
            deleted.set()
            connection.close()

    deleter = threading.Thread(target=delete_graph)
    deleter.start()
    with transaction.atomic():
        assert update_owned_execution(execution.id, worker="w1", heartbeat_at=timezone.now())
        flushing.set()
        # The deletion is under way and must wait on the run's row.
        assert not deleted.wait(0.5)
        ExecutionEvent.objects.create(
            execution_id=execution.id, seq=2, event="node.started", ts=timezone.now()
        )
    deleter.join(10)
    assert deleted.is_set()
    assert failures == []
    assert not Execution.objects.filter(pk=execution.pk).exists()
    assert not ExecutionEvent.objects.filter(execution_id=execution.pk).exists()


def test_a_queued_run_is_read_without_being_claimed(queued, user):
    read = read_queued(queued.id)
    assert read is not None
    assert (read.owner_id, read.inputs, read.last_seq) == (user.pk, {"x": "hi"}, 1)
    assert read.snapshot == queued.snapshot
    queued.refresh_from_db()
    assert (queued.status, queued.worker, queued.started_at) == ("queued", "", None)


def test_the_claim_of_a_read_run_takes_it_once_with_its_first_fields(queued):
    now = timezone.now()
    with transaction.atomic():
        assert claim_queued(queued.id, worker="w1", started=now, last_seq=1, heartbeat_at=now)
    assert not claim_queued(queued.id, worker="w2", started=now, last_seq=1, heartbeat_at=now)
    assert read_queued(queued.id) is None
    queued.refresh_from_db()
    assert (queued.status, queued.worker, queued.started_at) == ("running", "w1", now)
    assert update_owned_execution(queued.id, worker="w1", heartbeat_at=now)


def test_a_small_runs_claim_can_write_its_end_at_once(queued):
    now = timezone.now()
    assert claim_queued(
        queued.id,
        worker="w1",
        started=now,
        last_seq=1,
        heartbeat_at=now,
        status="succeeded",
        outputs={"o": "hi"},
        finished_at=now,
    )
    queued.refresh_from_db()
    assert (queued.status, queued.worker, queued.outputs) == ("succeeded", "w1", {"o": "hi"})


def test_the_claim_of_a_read_run_fails_once_it_changed(claim, queued):
    now = timezone.now()
    ExecutionEvent.objects.create(execution_id=queued.id, seq=2, event="node.started", ts=now)
    assert not claim_queued(queued.id, worker="w1", started=now, last_seq=1, heartbeat_at=now)
    Execution.objects.filter(pk=queued.pk).update(cancel_requested=True)
    assert not claim_queued(queued.id, worker="w1", started=now, last_seq=2, heartbeat_at=now)
    Execution.objects.filter(pk=queued.pk).update(cancel_requested=False)
    assert claim(queued, "w2") is not None
    assert not claim_queued(queued.id, worker="w1", started=now, last_seq=2, heartbeat_at=now)
    queued.refresh_from_db()
    assert queued.worker == "w2"
