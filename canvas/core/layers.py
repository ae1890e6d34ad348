"""The channel layers of the ``events`` alias: in memory (one process, no Redis), or Redis
pub/sub (``SharedRedisPubSubChannelLayer``, below).

Channels' ``InMemoryChannelLayer.group_send`` starts a task per member channel and each task
``deepcopy``s the message: a 100-event batch to 500 sockets is 500 copies of the batch (9.8 s
of one process's CPU measured on a loaded machine, docs/benchmarks.md). This layer copies a
group message once and puts that one copy in every member's queue.

Safe because the only receivers of this alias's group messages, ``canvas.consumers``'s
consumers, treat them as read-only (see the comment above its "relaying group messages"
handlers); the one copy still keeps the publisher's dicts apart from what the sockets read.
A message sent to one channel (``send``) is copied as before.

The copy is ``json_copy``: a group message is what channels-redis can serialize (dicts,
lists, strings, numbers), and copying those by type costs a third of ``deepcopy``'s memo
bookkeeping (a token's message: 3 against 10 us, once per token per process).

Channels' layer also walks every channel's queue and every group for expired messages on each
``receive`` and ``group_send``: 500 sockets receiving one group message walked 500 × 500
queues. Here that walk runs at most once per ``clean_interval`` (1 s); a message expires after
``expiry`` (60 s), so an expired message and its channel's memberships go at most that much
later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from copy import deepcopy
from typing import Any

from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close

logger = logging.getLogger(__name__)

_IMMUTABLE = frozenset({str, int, float, bool, bytes, type(None)})


def json_copy(value: Any) -> Any:
    """A copy of ``value`` that shares no dict or list with it: ``deepcopy`` for JSON-shaped
    data, without its memo (a dict held twice is copied twice). Other types go to
    ``deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if kind is list:
        return [json_copy(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    if kind is tuple:
        return tuple(json_copy(item) for item in value)
    return deepcopy(value)


class SharedInMemoryChannelLayer(InMemoryChannelLayer):
    clean_interval = 1.0
    _cleaned_at = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at < self.clean_interval:
            return
        self._cleaned_at = now
        super()._clean_expired()

    async def receive(self, channel: str) -> dict[str, Any]:
        # Channels' receive builds a new (discarded) queue on every call to setdefault it.
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            _, message = await queue.get()
        finally:
            if queue.empty():
                self.channels.pop(channel, None)
        return message

    def receive_nowait(self, channel: str) -> dict[str, Any] | None:
        """The channel's next queued message, or None when none is queued (never waits).

        For a consumer that has just been handed one message: the rest already queued for it
        can be relayed in the same turn of the loop (``CanvasConsumer.dispatch``), without a
        receive task and a wake-up per message. The caller is the channel's only reader and
        calls this while none of its ``receive`` calls is waiting, so order is kept."""
        queue = self.channels.get(channel)
        if queue is None or queue.empty():
            return None
        _, message = queue.get_nowait()
        if queue.empty():
            self.channels.pop(channel, None)
        return message

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if not isinstance(message, dict) or "__asgi_channel__" in message:
            raise TypeError("A group message is a dict without '__asgi_channel__'.")
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if not members:
            return
        shared = json_copy(message)
        expires = time.time() + self.expiry
        # Member names were validated by group_add. In member order, as the base class's tasks
        # run; a full channel misses the message, as there (ChannelFull is not raised).
        for channel in list(members):
            queue = self.channels.get(channel)
            if queue is None:
                queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
            if not queue.full():
                queue.put_nowait((expires, shared))


class SharedRedisPubSubChannelLayer(RedisPubSubChannelLayer):
    """channels-redis's pub/sub layer, decoding a message once per process and publishing a
    backlog in one round trip.

    - channels-redis 4.3's reader puts a message's bytes in the queue of each local channel
      it is for, and each channel's ``receive`` msgpack-decodes them: once per socket of the
      group. Here the reader decodes them once and every channel gets that one dict (read-only
      for its receivers, as with ``SharedInMemoryChannelLayer``).
    - ``receive_nowait`` hands a consumer what is already queued for it (as the in-memory
      layer's: ``CanvasConsumer.dispatch``).
    - ``group_send_many`` publishes several group messages in one pipeline: one write and one
      wait for Redis instead of a round trip awaited per message (the publisher's drain).
    """

    def _get_layer(self) -> RedisPubSubLoopLayer:
        # RedisPubSubChannelLayer._get_layer, with this module's loop layer.
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _SharedLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            _wrap_close(self, loop)
        return layer

    def deserialize(self, message: bytes | dict[str, Any]) -> dict[str, Any]:
        # The loop layer's receive deserializes what its queue held: already a message here.
        if type(message) is dict:
            return message
        return super().deserialize(message)

    def receive_nowait(self, channel: str) -> dict[str, Any] | None:
        """The channel's next queued message, or None when none is queued (never waits); the
        same contract as ``SharedInMemoryChannelLayer.receive_nowait``. Call on the loop the
        channel receives on."""
        queue = self._get_layer().channels.get(channel)
        if queue is None or queue.empty():
            return None
        return queue.get_nowait()

    async def group_send_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish ``(group, message)`` pairs in order, one pipeline per Redis host."""
        await self._get_layer().group_send_many(messages)


class _SharedLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [_SharedShard(shard.host, self) for shard in self._shards]

    async def group_send_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        serialize = self.channel_layer.serialize
        per_shard: dict[_SharedShard, list[tuple[str, bytes]]] = {}
        for group, message in messages:
            name = self._get_group_channel_name(group)
            per_shard.setdefault(self._get_shard(name), []).append((name, serialize(message)))
        for shard, items in per_shard.items():
            await shard.publish_many(items)


class _SharedShard(RedisSingleShardConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._has_subscriptions = asyncio.Event()

    async def subscribe(self, channel: str) -> None:
        await super().subscribe(channel)
        self._has_subscriptions.set()

    async def _do_receiving(self) -> None:
        # RedisSingleShardConnection._do_receiving, waiting for a subscription where it
        # sleeps 0.1 s at a time while nothing is subscribed: the first messages after an
        # idle spell (after the last socket left, and at the process's first subscription,
        # which starts the reader before it is made) came up to 0.1 s late (measured: a
        # run's first tokens 68-72 ms, bench/realtime.py).
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=0.1
                    )
                    self._receive_message(message)
                else:
                    self._has_subscriptions.clear()
                    await self._has_subscriptions.wait()
            except (TimeoutError, asyncio.CancelledError, GeneratorExit):
                raise
            except BaseException:
                logger.exception("Unexpected exception in receive task")
                await asyncio.sleep(1)

    async def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        async with self._lock:
            self._ensure_redis()
            # Not a transaction: the commands go in one write and Redis runs them in order.
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, data in items:
                    pipe.publish(name, data)
                await pipe.execute()

    def _receive_message(self, message: dict[str, Any] | None) -> None:
        # RedisSingleShardConnection._receive_message, decoding the data once for all the
        # local channels it is for (none: not decoded at all).
        if message is None:
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        layer = self.channel_layer
        if name in layer.channels:
            queues = [layer.channels[name]]
        else:
            members = layer.groups.get(name, ())
            queues = [layer.channels[c] for c in members if c in layer.channels]
        if not queues:
            return
        try:
            decoded = layer.channel_layer.deserialize(message["data"])
        except Exception:
            logger.exception("undecodable message on %s dropped", name)
            return
        for queue in queues:
            queue.put_nowait(decoded)
