"""The one WebSocket consumer at /ws/ (protocol: docs/realtime.md).

Thin by design: it authenticates, enforces limits, parses, and routes each message to the
built-ins (``ping``, ``subscribe``, ``unsubscribe``) or to a handler an app registered in
``canvas.core.realtime``; it relays group messages to the socket. It knows no app models.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from canvas.core import realtime
from canvas.core.authentication import token_with_user
from canvas.core.exceptions import ApplicationError
from canvas.core.parsers import json_loads_bounded, utf8_size_over
from canvas.core.publisher import publisher
from canvas.core.streams import Piece, TextStreams
from canvas.core.tails import tail_watcher

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_ABUSE = 4429
# No client message needs more; deeper is invalid_json (docs/realtime.md).
MAX_JSON_DEPTH = 32
# A socket relaying a batch of events lets the loop write its sockets after this many
# (measured with 500 sockets, bench/client.py --only fanout-live: 1 costs more loop turns and
# writes than it saves, 25 holds the first frames back ~0.8 s; 5-10 did best).
RELAY_YIELD_EVERY = 10
# Group messages a socket relays per wake-up when more are queued for it (``dispatch``).
RELAY_DRAIN = 10


@database_sync_to_async
def _user_for_token(key: str):
    # The REST API's lookup (canvas.core.authentication): one rule for a valid token.
    token = token_with_user(key)
    if token is None or not token.user.is_active:
        return None
    return token.user


class RateLimiter:
    """A token bucket: ``rate`` messages a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class CanvasConsumer(AsyncJsonWebsocketConsumer):
    channel_layer_alias = settings.EVENTS_CHANNEL_LAYER
    user = None

    # --- connection ----------------------------------------------------------------------

    async def connect(self):
        # Relays of one socket (live messages, the replay, backfills, the tail check's catch-up)
        # take turns: each keeps its subscription's last_seq and streams consistent across
        # awaits.
        self.relay_lock = asyncio.Lock()
        # Accept first, then close with an application code: closing before accepting shows
        # the client a bare HTTP 403 with no reason.
        await self.accept()
        publisher.bind_loop(asyncio.get_running_loop())
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.strikes = 0
        self.limiter = RateLimiter(
            settings.REALTIME_RATE_LIMIT_PER_SECOND, settings.REALTIME_RATE_LIMIT_BURST
        )
        self.heartbeat_task = None

        if self.scope.get("origin_allowed") is False:
            await self.close(code=CLOSE_FORBIDDEN_ORIGIN)
            return
        self.user = await self._authenticate()
        if self.user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.heartbeat_task = asyncio.create_task(self._heartbeat())

    async def _authenticate(self):
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        if "token" in query:
            return await _user_for_token(query["token"][0])
        # Cookie sessions only from browsers, whose Origin was checked: a client without an
        # Origin header must present a token.
        if self.scope.get("origin_allowed") is not True:
            return None
        user = self.scope.get("user")
        return user if user is not None and user.is_authenticated else None

    async def disconnect(self, code):
        if self.heartbeat_task:
            self.heartbeat_task.cancel()
        for state in getattr(self, "subscriptions", {}).values():
            self._unwatch(state)
            await self.channel_layer.group_discard(state["group"], self.channel_name)

    async def _heartbeat(self):
        while True:
            await asyncio.sleep(settings.REALTIME_HEARTBEAT_SECONDS)
            await self.send_json({"type": "heartbeat"})

    # --- the tail check (canvas/core/tails.py) ---------------------------------------------

    def last_seq_of(self, name: str) -> int | None:
        state = self.subscriptions.get(name)
        return None if state is None or state["final"] else state["last_seq"]

    async def catch_up(self, name: str) -> None:
        """A stored event that no live message brought (its publisher died, the layer lost
        it, and nothing after it shows the gap): send it from the database."""
        async with self.relay_lock:
            state = self.subscriptions.get(name)
            if state is not None and not state["final"]:
                await self._backfill(name, state, up_to=None)

    def _watch(self, state: dict[str, Any]) -> None:
        if state["sequenced"] and not state["final"]:
            tail_watcher().watch(state["topic"], state["object_id"], self)

    def _unwatch(self, state: dict[str, Any]) -> None:
        if state["sequenced"]:
            tail_watcher().unwatch(state["topic"], state["object_id"], self)

    # --- receiving -----------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        # Overridden: the base class's decode_json raises on bad JSON and the socket dies
        # with 1011. Here every bad input is an error message and the socket stays open.
        if self.user is None:
            return
        if not self.limiter.allow():
            await self._strike("rate_limited", "Too many messages; slow down.")
            return
        raw = text_data if text_data is not None else bytes_data
        if raw is None or utf8_size_over(raw, settings.REALTIME_MAX_MESSAGE_BYTES):
            await self._strike(
                "message_too_large",
                f"Messages are limited to {settings.REALTIME_MAX_MESSAGE_BYTES} bytes.",
            )
            return
        try:
            content = json_loads_bounded(raw, max_depth=MAX_JSON_DEPTH)
        except ValueError:
            await self.send_error(
                "invalid_json",
                f"Messages must be JSON objects nested at most {MAX_JSON_DEPTH} levels deep.",
            )
            return
        if not isinstance(content, dict):
            await self.send_error("invalid_message", "Messages must be JSON objects.")
            return
        request_id = content.get("request_id")
        try:
            await self.receive_json(content)
        except ApplicationError as exc:
            await self.send_error(exc.code, exc.message, request_id, **exc.socket_fields())
        except Exception:
            logger.exception("socket handler failed for %r", content.get("type"))
            await self.send_error("internal_error", "Something went wrong.", request_id)

    async def receive_json(self, content, **kwargs):
        message_type = content.get("type")
        if not isinstance(message_type, str):
            raise ApplicationError("Every message needs a string 'type'.", code="invalid_message")
        if message_type == "ping":
            await self.send_json({"type": "pong"})
        elif message_type == "subscribe":
            await self.subscribe(content)
        elif message_type == "unsubscribe":
            await self.unsubscribe(content)
        elif handler := realtime.get_handler(message_type):
            await handler(self, content)
        else:
            raise ApplicationError(f"Unknown message type {message_type!r}.", code="unknown_type")

    async def _strike(self, code: str, message: str):
        self.strikes += 1
        if self.strikes > settings.REALTIME_ABUSE_LIMIT:
            await self.close(code=CLOSE_ABUSE)
            return
        await self.send_error(code, message)

    async def send_error(self, code: str, message: str, request_id=None, **fields: Any):
        await self.send_json(
            {"type": "error", "code": code, "message": message, "request_id": request_id, **fields}
        )

    # --- subscriptions -------------------------------------------------------------------

    async def subscribe(self, content: dict[str, Any]):
        name = content.get("topic")
        topic, object_id = realtime.parse_topic(name)
        name = f"{topic.kind}:{object_id}"
        after = content.get("after")
        if after is not None and (
            isinstance(after, bool) or not isinstance(after, int) or after < 0
        ):
            raise ApplicationError("'after' must be a non-negative integer.", code="invalid")
        if (
            name not in self.subscriptions
            and len(self.subscriptions) >= settings.REALTIME_MAX_SUBSCRIPTIONS
        ):
            raise ApplicationError(
                f"At most {settings.REALTIME_MAX_SUBSCRIPTIONS} subscriptions per socket.",
                code="too_many_subscriptions",
            )
        group = topic.group_name(object_id)
        # Join the group first, then read snapshot + replay: an event published in between
        # is both in the replay and queued for us, and the seq check drops the duplicate.
        await self.channel_layer.group_add(group, self.channel_name)
        async with self.relay_lock:
            try:
                opened = await database_sync_to_async(topic.open)(
                    user=self.user, object_id=object_id, after=after
                )
            except Exception:
                if name not in self.subscriptions:
                    await self.channel_layer.group_discard(group, self.channel_name)
                raise
            state = {
                "topic": topic,
                "object_id": object_id,
                "group": group,
                "sequenced": topic.sequenced,
                "last_seq": opened.last_seq,
                "final": opened.final,
                "streams": TextStreams() if topic.stream_event else None,
            }
            if (previous := self.subscriptions.get(name)) is not None:
                self._unwatch(previous)
            self.subscriptions[name] = state
            reply = {"type": "subscribed", "topic": name}
            if opened.snapshot is not None:
                reply["snapshot"] = opened.snapshot
            await self.send_json(reply)
            for event in opened.events:
                await self._send_stored(name, state, event)
            self._watch(state)

    async def unsubscribe(self, content: dict[str, Any]):
        topic, object_id = realtime.parse_topic(content.get("topic"))
        name = f"{topic.kind}:{object_id}"
        state = self.subscriptions.pop(name, None)
        if state is None:
            raise ApplicationError(f"Not subscribed to {name}.", code="not_subscribed")
        self._unwatch(state)
        await self.channel_layer.group_discard(state["group"], self.channel_name)
        await self.send_json({"type": "unsubscribed", "topic": name})

    # --- relaying group messages ---------------------------------------------------------
    #
    # Group messages are read-only here: every handler below reads fields of the message (and
    # of its ``events``, ``data``, ``stream``, ``frame``) and never changes or keeps a part of
    # it beyond sending it. Both events layers hand one copy of a message to every socket of
    # a group in the process (``canvas.core.layers``) and rely on this.

    async def dispatch(self, message):
        # Channels' dispatch first closes old database connections in a thread hop
        # (``sync_to_async``, into the one thread every ``database_sync_to_async`` call of the
        # process shares), for every message of every socket: a fan-out's live events queued
        # there behind the subscribes' reads, and every subscribe waited there twice (the hop,
        # then its read). The relays and the client messages' handlers reach the database
        # only through ``database_sync_to_async``, which closes old connections itself.
        handler = await self._dispatch_one(message)
        if handler in _RELAYS and self._receive_nowait is not None:
            # Channels' loop hands a consumer one message per receive task and wake-up (a
            # task, a wait and four loop callbacks each). Messages already queued behind
            # this one are relayed now, up to RELAY_DRAIN: a backlogged socket (token
            # frames arriving faster than the loop relays them) costs less per frame, and
            # its frames leave in one write. The client's messages wait at most that long.
            for _ in range(RELAY_DRAIN):
                queued = self._receive_nowait(self.channel_name)
                if queued is None:
                    break
                await self._dispatch_one(queued)

    async def _dispatch_one(self, message) -> str | None:
        """Handle one message, without the hop when it is one of ``_WITHOUT_HOP``'s; the
        handler's name (None: Channels' dispatch took it)."""
        handler = _WITHOUT_HOP.get(message.get("type"))
        if handler is None:
            await super().dispatch(message)
        else:
            await getattr(self, handler)(message)
        return handler

    async def send(self, text_data=None, bytes_data=None, close=False):
        # A text frame goes out through the server's own write where it offers one
        # (``realtime.WRITE_TEXT_EXTENSION``): a plain call, where ASGI's send goes through
        # Channels' and Daphne's coroutines and Daphne's checks of a message of any type
        # (1.2 against 3.9 us a frame in process; the serving process's CPU per frame in the
        # 500-socket live fan-out fell from 17-20 to 14-18 us, docs/benchmarks.md). What the
        # write refuses, and everything else, goes through ASGI. Frames leave in the order
        # they were sent, whichever way: both write to the socket's transport before
        # returning. (An empty text is left to ASGI too: Daphne sends nothing for it.)
        if text_data and bytes_data is None and not close:
            write = self._write_text
            if write is not None and write(text_data):
                return
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def send_json(self, content, close=False):
        # Channels' send_json, through this class's send (Channels' calls super().send).
        await self.send(text_data=await self.encode_json(content), close=close)

    @functools.cached_property
    def _write_text(self) -> Callable[[str], bool] | None:
        # None where the server does not offer its write (another server, Channels'
        # communicator in tests).
        extension = (self.scope.get("extensions") or {}).get(realtime.WRITE_TEXT_EXTENSION)
        return None if extension is None else extension["write"]

    @functools.cached_property
    def _receive_nowait(self):
        # Layers that can hand over a queued message without waiting (both events layers of
        # canvas.core.layers); None for the others, which keep Channels' one per wake-up.
        return getattr(getattr(self, "channel_layer", None), "receive_nowait", None)

    async def realtime_event(self, message: dict[str, Any]):
        name = message["topic"]
        if name not in self.subscriptions:
            return
        async with self.relay_lock:
            state = self.subscriptions.get(name)
            if state is not None:
                await self._relay(name, state, message)

    async def _relay(self, name: str, state: dict[str, Any], message: dict[str, Any]):
        # Precondition: holding self.relay_lock.
        seq = message.get("seq")
        if not state["sequenced"] or seq is None:  # graph changes, node.token
            if message["event"] == state["topic"].stream_event and not self._admit(state, message):
                return  # its stream ended on this socket already (or an older attempt's)
            await self._send_event(name, message)
            return
        if seq <= state["last_seq"]:
            return  # already sent (replayed or backfilled)
        if seq > state["last_seq"] + 1:
            await self._backfill(name, state, up_to=seq - 1)
            if seq <= state["last_seq"]:
                return
        await self._send_sequenced(name, state, message)

    async def realtime_events(self, message: dict[str, Any]):
        name = message["topic"]
        if name not in self.subscriptions:
            return
        async with self.relay_lock:
            for position, event in enumerate(message["events"], 1):
                state = self.subscriptions.get(name)
                if state is None:
                    return
                await self._relay(name, state, event)
                if position % RELAY_YIELD_EVERY == 0:
                    # A send only queues the frame in the transport; it is written when the
                    # loop next polls its sockets. Every socket of a group relays its batch
                    # in the same loop iteration, so without a pause here no frame of the
                    # batch left before the last socket's last one was queued (500 sockets x
                    # 100 events: ~1.5 s in which the clients received nothing).
                    await asyncio.sleep(0)

    async def realtime_frame(self, message: dict[str, Any]):
        if message["topic"] in self.subscriptions:
            if (encoded := message.get("encoded")) is not None:
                await self.send(text_data=encoded)  # the frame, encoded once by the publisher
            else:
                await self.send_json(message["frame"])

    async def _backfill(self, name: str, state: dict[str, Any], *, up_to: int | None):
        events = await database_sync_to_async(state["topic"].events_after)(
            object_id=state["object_id"], after=state["last_seq"]
        )
        for event in events:
            if up_to is not None and event["seq"] > up_to:
                break
            if event["seq"] != state["last_seq"] + 1:
                break  # the log itself is gapless; stop rather than send out of order
            await self._send_sequenced(name, state, event)

    async def _send_sequenced(self, name: str, state: dict[str, Any], message: dict[str, Any]):
        state["last_seq"] = message["seq"]
        if message["event"] in state["topic"].final_events:
            state["final"] = True
            self._unwatch(state)
        await self._send_stored(name, state, message)

    async def _send_stored(self, name: str, state: dict[str, Any], message: dict[str, Any]):
        """Send a stored event (live, replayed or backfilled), keeping its streams in order:
        a stream's end goes out after the rest of its text, and closes it on this socket."""
        streams: TextStreams | None = state["streams"]
        mark = state["topic"].stream_mark(message) if streams is not None else None
        if mark is not None:
            if mark.key is None:
                streams.end_all()
            elif mark.started:
                streams.started(mark.key, mark.attempt)
            elif (rest := streams.end(mark.key, mark.final_text)) is not None:
                topic = state["topic"]
                data = {topic.stream_field: mark.key, "index": rest.index}
                data.update(count=rest.count, text=rest.text)
                await self._send_event(
                    name, {"event": topic.stream_event, "data": data, "ts": message["ts"]}
                )
        await self._send_event(name, message)

    @staticmethod
    def _admit(state: dict[str, Any], message: dict[str, Any]) -> bool:
        if state["final"]:
            return False
        data, stream = message["data"], message.get("stream") or {}
        piece = Piece(index=data["index"], count=data.get("count", 1), text=data["text"])
        return state["streams"].admit(
            str(data[state["topic"].stream_field]),
            piece,
            attempt=stream.get("attempt"),
            offset=stream.get("offset"),
        )

    async def _send_event(self, name: str, message: dict[str, Any]):
        encoded = message.get("encoded")
        if encoded is not None and message.get("topic") == name:
            # Its frame encoded once for every socket (``realtime.with_encoded_frame``; the
            # same text ``send_json`` would write): by the publisher for a live event, by the
            # replay cache (``canvas.core.replays``) for a replayed one.
            await self.send(text_data=encoded)
            return
        # Backfilled events (from the database) and the rest of a stream (made here) are
        # encoded per socket.
        await self.send_json(realtime.event_frame(name, message))


# Messages dispatched without Channels' connection-closing hop (``dispatch``): the group
# relays and the client's messages; connect and disconnect keep it.
_WITHOUT_HOP = {
    "realtime.event": "realtime_event",
    "realtime.events": "realtime_events",
    "realtime.frame": "realtime_frame",
    "websocket.receive": "websocket_receive",
}
_RELAYS = frozenset({"realtime_event", "realtime_events", "realtime_frame"})
