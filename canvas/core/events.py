"""Every topic and event name the socket carries, in one place (protocol: docs/realtime.md).

A topic is ``<kind>:<object id>``; its channel-layer group is ``<kind>.<object id>``.
Publishers name events with these constants and publish them with
``canvas.core.publisher.publish_on_commit``; ``tests/realtime/test_event_shapes.py`` checks every
event here against the table in docs/realtime.md.
"""

from __future__ import annotations

import uuid

# --- topic kinds ---------------------------------------------------------------------------

EXECUTION = "execution"
GRAPH = "graph"
CONVERSATION = "conversation"


def topic_name(kind: str, object_id: uuid.UUID | str) -> str:
    return f"{kind}:{object_id}"


def execution_topic(execution_id: uuid.UUID | str) -> str:
    return topic_name(EXECUTION, execution_id)


def graph_topic(graph_id: uuid.UUID | str) -> str:
    return topic_name(GRAPH, graph_id)


def conversation_topic(conversation_id: uuid.UUID | str) -> str:
    return topic_name(CONVERSATION, conversation_id)


def group_name(topic: str) -> str:
    """The channel-layer group of a topic (group names allow no ``:``)."""
    kind, _, object_id = topic.partition(":")
    return f"{kind}.{object_id}"


# --- execution topics: persisted with a gapless seq, except node.token ---------------------

EXECUTION_QUEUED = "execution.queued"
EXECUTION_STARTED = "execution.started"
NODE_STARTED = "node.started"
NODE_TOKEN = "node.token"  # noqa: S105 - an event name, not a secret
NODE_RETRYING = "node.retrying"
NODE_CACHED = "node.cached"
NODE_COMPLETED = "node.completed"
NODE_FAILED = "node.failed"
NODE_SKIPPED = "node.skipped"
EXECUTION_COMPLETED = "execution.completed"
EXECUTION_FAILED = "execution.failed"
EXECUTION_CANCELLED = "execution.cancelled"

# After one of these nothing more is published for the run.
EXECUTION_FINAL_EVENTS = frozenset({EXECUTION_COMPLETED, EXECUTION_FAILED, EXECUTION_CANCELLED})

# --- graph topics: seq is the graph's new version -----------------------------------------

GRAPH_NODE_CREATED = "node.created"
GRAPH_NODE_UPDATED = "node.updated"
GRAPH_NODE_DELETED = "node.deleted"
EDGE_CREATED = "edge.created"
EDGE_UPDATED = "edge.updated"
EDGE_DELETED = "edge.deleted"
GRAPH_UPDATED = "graph.updated"
GRAPH_DELETED = "graph.deleted"

# --- conversation topics: chat frames, sent as top-level frames, not in the event envelope -

CHAT_TOKEN = "chat.token"  # noqa: S105 - an event name, not a secret
CHAT_DONE = "chat.done"

FRAME_EVENTS = frozenset({CHAT_TOKEN, CHAT_DONE})

EVENTS: dict[str, tuple[str, ...]] = {
    EXECUTION: (
        EXECUTION_QUEUED,
        EXECUTION_STARTED,
        NODE_STARTED,
        NODE_TOKEN,
        NODE_RETRYING,
        NODE_CACHED,
        NODE_COMPLETED,
        NODE_FAILED,
        NODE_SKIPPED,
        EXECUTION_COMPLETED,
        EXECUTION_FAILED,
        EXECUTION_CANCELLED,
    ),
    GRAPH: (
        GRAPH_NODE_CREATED,
        GRAPH_NODE_UPDATED,
        GRAPH_NODE_DELETED,
        EDGE_CREATED,
        EDGE_UPDATED,
        EDGE_DELETED,
        GRAPH_UPDATED,
        GRAPH_DELETED,
    ),
    CONVERSATION: (CHAT_TOKEN, CHAT_DONE),
}
