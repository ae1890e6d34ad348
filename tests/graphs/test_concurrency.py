"""Writers of one graph take its row lock, so two edges that are each fine alone cannot form a
cycle by being added at the same time. Real threads, real transactions (both databases)."""

import threading
import time

import pytest
from django.db import connection, transaction

from canvas.core.exceptions import ApplicationError
from graphs.models import Edge
from graphs.services import edge_create, graph_create
from tests.graphs.factories import edge, node


@pytest.mark.django_db(transaction=True)
def test_concurrent_edges_cannot_close_a_cycle(user):
    a = node("template", {"template": "{x}"})
    b = node("template", {"template": "{x}"})
    saved = graph_create(owner=user, name="race", nodes=[a, b])
    graph_id = saved.graph.id
    first_wrote, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def first():
        try:
            with transaction.atomic():
                edge_create(user=user, graph_id=graph_id, data=edge(a, "text", b, "x"))
                first_wrote.set()
                release.wait(10)  # hold the lock while the second writer tries
            outcome["first"] = "ok"
        finally:
            connection.close()

    def second():
        try:
            first_wrote.wait(10)
            edge_create(user=user, graph_id=graph_id, data=edge(b, "text", a, "x"))
            outcome["second"] = "ok"
        except ApplicationError as exc:
            outcome["second"] = exc.errors
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_wrote.wait(10)
    time.sleep(0.5)
    assert "second" not in outcome  # blocked on the graph's lock, not racing past it
    release.set()
    for thread in threads:
        thread.join(30)

    assert outcome["first"] == "ok"
    assert "cycle" in outcome["second"]["graph"][0]["message"]
    assert Edge.objects.filter(graph_id=graph_id).count() == 1
