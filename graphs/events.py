"""Graph change events for ``graph:<id>`` socket subscribers, published on commit.

Every write in ``graphs.services`` goes through ``_bump`` (the version goes up), which hands
its events here, so changes through any path (REST, admin, commands, the socket) reach
subscribers. Each event carries the graph's new ``version`` as its ``seq``: a client that sees
a version jump refetches the document.
"""

from __future__ import annotations

from typing import Any

from canvas.core.events import graph_topic
from canvas.core.publisher import Event, publish_events_on_commit

# (event name from ``canvas.core.events``, data)
GraphEvent = tuple[str, dict[str, Any]]


def graph_events_publish_on_commit(*, graph, events: list[GraphEvent]) -> None:
    """Publish ``events`` of a write to ``graph`` once its transaction commits."""
    extra = {"graph": str(graph.pk), "version": graph.version}
    publish_events_on_commit(
        graph_topic(graph.pk),
        [Event(name, {**extra, **data}, graph.version) for name, data in events],
    )
