"""The socket's extension points. Apps register their topics and message handlers here.

The consumer (``canvas/consumers.py``) knows no app models: each app's ``realtime.py`` (imported
when the apps are ready) registers

- a ``Topic`` subclass per topic kind (``execution``, ``graph``, ``conversation``): who may
  subscribe, the snapshot, and for sequenced topics the persisted events to replay;
- ``@message_handler("execution.cancel")`` functions for client messages beyond the built-in
  ``ping``, ``subscribe`` and ``unsubscribe``.

Publishers (``canvas.core.publisher.publish_on_commit``) send group messages of the shapes below
(``event_message``, ``events_message``, ``frame_message``) to
``Topic.group_name(object_id)``.

A sequenced topic may carry text streams (an execution's ``node.token``): unsequenced pieces
of text that stored events start and end. The topic names its token event and says, per stored
event, what it does to the streams (``Topic.stream_mark``); the consumer then keeps every
piece of a stream before the stream's end on each socket, whichever path the end took
(``canvas/core/streams.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.utils import timezone
from rest_framework import serializers

from canvas.core.events import group_name, topic_name
from canvas.core.exceptions import ApplicationError
from canvas.core.ids import parse_id

if TYPE_CHECKING:
    from canvas.consumers import CanvasConsumer


@dataclasses.dataclass
class Opened:
    """What ``Topic.open`` answers: the snapshot and, for sequenced topics, the replay."""

    snapshot: dict[str, Any] | None = None
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # The highest seq the subscriber has after the replay (sequenced topics only).
    last_seq: int = 0
    # True when nothing more will be published (a finished run): no tail checks needed.
    final: bool = False


@dataclasses.dataclass(frozen=True)
class StreamMark:
    """What a stored event does to its topic's text streams (see ``Topic.stream_mark``)."""

    # The stream (a node id); None: every stream of the object (the run ended).
    key: str | None
    # True: the stream (re)starts from its first character; False: it ends.
    started: bool = False
    attempt: int | None = None
    # For an end: the stream's whole final text, when the event carries it.
    final_text: str | None = None


class Topic:
    """A kind of topic. Subclass, set ``kind``, implement ``open`` (and ``events_after``)."""

    kind: ClassVar[str]
    # Sequenced topics carry a gapless ``seq`` per object: the consumer drops duplicates and
    # backfills a jump from ``events_after``.
    sequenced: ClassVar[bool] = False
    # Events after which nothing more comes for the object.
    final_events: ClassVar[frozenset[str]] = frozenset()
    # The unsequenced event whose ``data`` is a piece of a text stream,
    # ``{<stream_field>: key, "index", "count", "text"}``, published with ``stream`` (see
    # ``event_message``); None when the topic streams no text.
    stream_event: ClassVar[str | None] = None
    stream_field: ClassVar[str] = "stream"

    def stream_mark(self, message: dict[str, Any]) -> StreamMark | None:
        """What the stored event ``message`` does to the text streams, if anything."""
        return None

    @classmethod
    def group_name(cls, object_id: uuid.UUID | str) -> str:
        return group_name(topic_name(cls.kind, object_id))

    def open(self, *, user, object_id: uuid.UUID, after: int | None) -> Opened:
        """Authorize and read the snapshot and replay. Runs in a database thread.

        Raise ``canvas.core.exceptions.NotFoundError`` when the object is missing or not the
        user's (one answer for both).
        """
        raise NotImplementedError

    def events_after(
        self, *, object_id: uuid.UUID, after: int, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Persisted events with ``seq > after``, oldest first, as ``event_message`` dicts."""
        raise NotImplementedError

    def last_seqs(self, object_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The highest persisted ``seq`` of each object that has events, in one query where
        the database allows (the tail check of ``canvas/core/tails.py``)."""
        raise NotImplementedError


_topics: dict[str, Topic] = {}
Handler = Callable[["CanvasConsumer", dict[str, Any]], Awaitable[None]]
_handlers: dict[str, Handler] = {}

BUILTIN_TYPES = frozenset({"ping", "subscribe", "unsubscribe"})


def timestamp(moment) -> str:
    """A time as REST writes it (DRF's ``DateTimeField``: ISO 8601, ``Z`` for UTC), so a
    socket message's ``ts`` and the API's times read the same."""
    if type(moment) is datetime and moment.tzinfo is UTC and _zone_is_utc():
        # What the field writes for a UTC time in a UTC zone, at a third of its cost (an
        # event's time is timezone.now(); a 200-node run publishes ~400 of them).
        return moment.isoformat()[:-6] + "Z"
    return _timestamp_field().to_representation(moment)


@functools.cache
def _zone_is_utc() -> bool:
    return timezone.get_default_timezone_name() == "UTC"


@functools.cache
def _timestamp_field() -> serializers.DateTimeField:
    # In TIME_ZONE, the zone REST answers in (the project activates no other): given once,
    # it spares a lookup of the current zone per call (a third of a 400-event replay).
    return serializers.DateTimeField(default_timezone=timezone.get_default_timezone())


def register_topic(topic_class: type[Topic]) -> type[Topic]:
    """Class decorator: make ``<kind>:<uuid>`` topics subscribable."""
    _topics[topic_class.kind] = topic_class()
    return topic_class


def message_handler(message_type: str) -> Callable[[Handler], Handler]:
    """Decorator: route client messages of ``message_type`` to an async handler.

    The handler gets the consumer (``consumer.user``, ``consumer.send_json``) and the message.
    It raises ``ApplicationError`` (its ``code`` becomes the socket error's code) for bad input.
    """
    if message_type in BUILTIN_TYPES:
        raise ValueError(f"{message_type!r} is built into the consumer")

    def register(handler: Handler) -> Handler:
        _handlers[message_type] = handler
        return handler

    return register


def get_topic(kind: str) -> Topic | None:
    return _topics.get(kind)


def get_handler(message_type: str) -> Handler | None:
    return _handlers.get(message_type)


def parse_topic(value: Any) -> tuple[Topic, uuid.UUID]:
    """``"execution:<uuid>"`` → (topic, id). Malformed ids answer ``not_found`` like missing."""
    if not isinstance(value, str) or ":" not in value:
        raise ApplicationError(
            "topic must look like 'execution:<id>', 'graph:<id>' or 'conversation:<id>'.",
            code="invalid_topic",
        )
    kind, _, raw_id = value.partition(":")
    topic = get_topic(kind)
    if topic is None:
        raise ApplicationError(f"Unknown topic kind {kind!r}.", code="invalid_topic")
    return topic, parse_id(raw_id, what=kind)


def event_message(
    *,
    topic: str,
    event: str,
    data: dict[str, Any],
    ts: str,
    seq: int | None = None,
    stream: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A group message the consumer relays as ``{"type": "event", ...}``.

    ``stream``, for a piece of a text stream (``Topic.stream_event``): ``{"attempt", "offset"}``,
    the stream's attempt and the characters of it before ``data["text"]``. The consumer reads
    it to keep the order per socket (``canvas/core/streams.py``) and never sends it.
    """
    message = {"type": "realtime.event", "topic": topic, "event": event, "data": data, "ts": ts}
    if seq is not None:
        message["seq"] = seq
    if stream is not None:
        message["stream"] = stream
    return message


def event_frame(topic: str, message: dict[str, Any]) -> dict[str, Any]:
    """The socket frame of an ``event_message`` (or any dict with ``event``, ``data``, ``ts``
    and maybe ``seq``) for a subscriber of ``topic``: ``{"type": "event", "topic", ("seq"),
    "event", "data", "ts"}``, in that key order."""
    frame = {"type": "event", "topic": topic}
    if "seq" in message:
        frame["seq"] = message["seq"]
    frame.update(event=message["event"], data=message["data"], ts=message["ts"])
    return frame


def encode_frame(frame: dict[str, Any]) -> str:
    """A frame as the socket's text: exactly what ``send_json`` writes (Channels'
    ``encode_json``, ``json.dumps`` with its defaults), so a frame encoded once by the publisher
    and one encoded per socket are the same bytes."""
    return json.dumps(frame)


# The ASGI extension (``scope["extensions"]``) through which the server that runs this project
# (``canvas.daphne_server``) lets the consumer write an encoded frame's text to its socket at
# once: ``{"write": callable(text) -> bool}``, False when the frame must go through ASGI's
# ``send`` instead. Other servers, and Channels' communicator in tests, do not offer it.
WRITE_TEXT_EXTENSION = "canvas.websocket.write_text"


def with_encoded_frame(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` (an ``event_message`` or ``frame_message``) plus ``encoded``: its frame's
    text, encoded once for every subscriber. The consumer sends that text wherever it would
    have sent exactly that frame (an event of the topic it names, live or replayed from
    ``canvas.core.replays``); backfills and frames it makes itself are encoded per socket. A
    message whose frame does not encode (not JSON) goes without, and fails per socket as it
    always did."""
    if message["type"] == "realtime.event":
        frame = event_frame(message["topic"], message)
    elif message["type"] == "realtime.frame":
        frame = message["frame"]
    else:
        return message
    try:
        return {**message, "encoded": encode_frame(frame)}
    except (TypeError, ValueError):
        return message


def events_message(*, topic: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """One group message carrying several ``event_message``s of one topic, relayed in order
    (a flush commits many events: one channel-layer message instead of one each)."""
    return {"type": "realtime.events", "topic": topic, "events": events}


def frame_message(*, topic: str, frame: dict[str, Any]) -> dict[str, Any]:
    """A group message the consumer relays as ``frame`` itself (chat's top-level frames)."""
    return {"type": "realtime.frame", "topic": topic, "frame": frame}
