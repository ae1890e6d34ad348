"""The ``graph:<id>`` socket topic: node, edge and graph changes of one of the user's graphs."""

from __future__ import annotations

import uuid

from canvas.core import realtime
from graphs.events import graph_group
from graphs.selectors import graph_get_for_user


@realtime.register_topic
class GraphTopic(realtime.Topic):
    kind = "graph"

    @classmethod
    def group_name(cls, object_id) -> str:
        return graph_group(object_id)

    def open(self, *, user, object_id: uuid.UUID, after: int | None) -> realtime.Opened:
        graph = graph_get_for_user(user=user, graph_id=object_id)
        return realtime.Opened(snapshot={"version": graph.version})
