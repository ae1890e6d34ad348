"""The ``graph:<id>`` socket topic: node, edge and graph changes of one of the user's graphs."""

from __future__ import annotations

import uuid

from canvas.core import events, realtime
from graphs.selectors import graph_get_for_user


@realtime.register_topic
class GraphTopic(realtime.Topic):
    kind = events.GRAPH

    def open(self, *, user, object_id: uuid.UUID, after: int | None) -> realtime.Opened:
        graph = graph_get_for_user(user=user, graph_id=object_id)
        return realtime.Opened(snapshot={"version": graph.version})
