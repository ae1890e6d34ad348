"""Graph change events for ``graph:<id>`` socket subscribers, published on commit.

Every write in ``graphs.services`` goes through ``_bump`` (the version goes up), which hands
its events here, so changes through any path (REST, admin, commands, the socket) reach
subscribers. Each event carries the graph's new ``version`` as its ``seq``: a client that sees
a version jump refetches the document.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from canvas.core.publisher import publish
from canvas.core.realtime import event_message

GraphEvent = tuple[str, dict[str, Any]]


def graph_group(graph_id) -> str:
    return f"graph.{graph_id}"


def graph_events_publish_on_commit(*, graph, events: list[GraphEvent]) -> None:
    """Publish ``events`` (name, data) of a write to ``graph`` once its transaction commits."""
    if not events:
        return
    topic, group = f"graph:{graph.pk}", graph_group(graph.pk)
    ts = timezone.now().isoformat()
    messages = [
        event_message(
            topic=topic,
            event=name,
            data={"graph": str(graph.pk), "version": graph.version, **data},
            ts=ts,
            seq=graph.version,
        )
        for name, data in events
    ]

    def send():
        for message in messages:
            publish(group, message)

    transaction.on_commit(send)
