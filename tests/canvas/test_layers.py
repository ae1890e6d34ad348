"""The sockets' layers (canvas/core/layers.py): in memory, one copy of a group message per
send; over Redis pub/sub, one decode per process and a backlog in one round trip."""

import asyncio
import os
import time
import uuid

import pytest
from channels.layers import InMemoryChannelLayer

from canvas.core.layers import SharedInMemoryChannelLayer, json_copy


async def _members(layer, group, count):
    channels = [await layer.new_channel() for _ in range(count)]
    for channel in channels:
        await layer.group_add(group, channel)
    return channels


async def test_every_member_gets_one_shared_copy_apart_from_the_senders_dict():
    layer = SharedInMemoryChannelLayer()
    channels = await _members(layer, "g", 3)
    message = {"type": "realtime.event", "data": {"items": [1, 2]}, "encoded": "{}"}

    await layer.group_send("g", message)
    message["data"]["items"].append(3)  # the sender reuses its dict

    received = [await asyncio.wait_for(layer.receive(c), 1) for c in channels]
    assert all(
        r == {"type": "realtime.event", "data": {"items": [1, 2]}, "encoded": "{}"}
        for r in received
    )
    assert received[0] is received[1] is received[2]  # copied once, not per member
    assert received[0] is not message


async def test_order_is_kept_and_a_full_channel_misses_the_message_without_failing_the_send():
    layer = SharedInMemoryChannelLayer(capacity=2)
    slow, fast = await _members(layer, "g", 2)
    for n in range(2):
        await layer.group_send("g", {"type": "x", "n": n})
    assert (await layer.receive(fast))["n"] == 0
    await layer.group_send("g", {"type": "x", "n": 2})  # slow's queue is full: dropped there

    assert [(await layer.receive(fast))["n"] for _ in range(2)] == [1, 2]
    assert [(await layer.receive(slow))["n"] for _ in range(2)] == [0, 1]
    assert layer.channels.get(slow) is None  # nothing more queued for it


async def test_a_group_with_no_members_and_a_discarded_member_get_nothing():
    layer = SharedInMemoryChannelLayer()
    await layer.group_send("empty", {"type": "x"})
    kept, gone = await _members(layer, "g", 2)
    await layer.group_discard("g", gone)
    await layer.group_send("g", {"type": "x"})
    assert await asyncio.wait_for(layer.receive(kept), 1) == {"type": "x"}
    assert gone not in layer.channels


async def test_expired_messages_still_go_and_the_walk_runs_once_per_interval(monkeypatch):
    layer = SharedInMemoryChannelLayer(expiry=0.05)
    stale, fresh = await _members(layer, "g", 2)
    walks = []
    walk = InMemoryChannelLayer._clean_expired
    monkeypatch.setattr(
        InMemoryChannelLayer, "_clean_expired", lambda self: walks.append(1) or walk(self)
    )
    for _ in range(20):  # the first walks, the others do not
        await layer.group_send("g", {"type": "x"})
        await layer.receive(fresh)
    assert len(walks) == 1

    layer.clean_interval = 0.1
    await asyncio.sleep(0.15)
    await layer.group_send("g", {"type": "y"})  # walks: stale's unread messages expired
    assert len(walks) == 2
    assert list(layer.groups["g"]) == [fresh]
    assert stale not in layer.channels
    assert await asyncio.wait_for(layer.receive(fresh), 1) == {"type": "y"}


def test_json_copy_shares_no_dict_or_list_and_falls_back_to_deepcopy():
    inner = {"items": [1, {"x": "y"}], "pair": ([1], 2.5)}
    value = {"a": inner, "b": inner, "none": None, "flag": True, "raw": b"z", "id": uuid.uuid4()}

    copied = json_copy(value)

    assert copied == value
    assert copied["a"] is not inner
    assert copied["a"]["items"] is not inner["items"]
    assert copied["a"]["items"][1] is not inner["items"][1]
    assert copied["a"]["pair"][0] is not inner["pair"][0]  # a list inside a tuple too
    assert copied["id"] == value["id"]
    inner["items"].append(3)
    assert copied["a"]["items"] == [1, {"x": "y"}] == copied["b"]["items"]


# --- the Redis pub/sub layer ----------------------------------------------------------------


def _redis_layer():
    from canvas.core.layers import SharedRedisPubSubChannelLayer

    return SharedRedisPubSubChannelLayer(
        hosts=[os.environ["REDIS_URL"]], prefix=f"test-layers-{uuid.uuid4().hex[:8]}"
    )


def _count_decodes(layer, monkeypatch) -> list[bytes]:
    decoded = []
    original = layer._serializer.deserialize

    def counting(data):
        decoded.append(data)
        return original(data)

    monkeypatch.setattr(layer._serializer, "deserialize", counting)
    return decoded


@pytest.mark.redis
async def test_redis_layer_decodes_a_group_message_once_for_all_its_local_channels(monkeypatch):
    layer = _redis_layer()
    decoded = _count_decodes(layer, monkeypatch)
    channels = await _members(layer, "g", 3)
    alone = await layer.new_channel()
    try:
        await layer.group_send("g", {"type": "x", "data": {"items": [1, 2]}})
        await layer.send(alone, {"type": "y"})

        received = [await asyncio.wait_for(layer.receive(c), 2) for c in channels]
        assert await asyncio.wait_for(layer.receive(alone), 2) == {"type": "y"}
        assert received[0] == {"type": "x", "data": {"items": [1, 2]}}
        assert received[0] is received[1] is received[2]
        assert len(decoded) == 2  # the group message once, the channel's once
    finally:
        await layer.flush()


@pytest.mark.redis
async def test_redis_layer_hands_queued_messages_over_in_order_without_waiting():
    layer = _redis_layer()
    (channel,) = await _members(layer, "g", 1)
    try:
        assert layer.receive_nowait(channel) is None
        for n in range(5):
            await layer.group_send("g", {"type": "x", "n": n})
        assert (await asyncio.wait_for(layer.receive(channel), 2))["n"] == 0
        for _ in range(50):  # the rest have arrived or are about to
            if layer._get_layer().channels[channel].qsize() == 4:
                break
            await asyncio.sleep(0.01)
        assert [layer.receive_nowait(channel)["n"] for _ in range(4)] == [1, 2, 3, 4]
        assert layer.receive_nowait(channel) is None
    finally:
        await layer.flush()


@pytest.mark.redis
async def test_redis_layer_publishes_a_backlog_in_order_per_group():
    layer = _redis_layer()
    (a,) = await _members(layer, "a", 1)
    (b,) = await _members(layer, "b", 1)
    try:
        messages = [(group, {"type": "x", "n": n}) for n in range(300) for group in "ab"]
        await layer.group_send_many(messages[:10])
        await layer.group_send("a", {"type": "x", "n": -1})  # one at a time still works
        await layer.group_send_many(messages[10:])

        got_a = [(await asyncio.wait_for(layer.receive(a), 2))["n"] for _ in range(301)]
        got_b = [(await asyncio.wait_for(layer.receive(b), 2))["n"] for _ in range(300)]
        assert got_a == [0, 1, 2, 3, 4, -1, *range(5, 300)]
        assert got_b == list(range(300))
    finally:
        await layer.flush()


@pytest.mark.redis
async def test_redis_layer_reads_from_the_first_subscription_on():
    # channels-redis's reader starts before the first subscription is made and then slept
    # 0.1 s: the first messages of a fresh process came up to 0.1 s late. The best of three
    # fresh layers, so that one slow moment of the machine does not decide.
    waits = []
    for _ in range(3):
        layer = _redis_layer()
        try:
            channel = await layer.new_channel()  # the layer's first subscription
            started = time.monotonic()
            await layer.send(channel, {"type": "x"})
            assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": "x"}
            waits.append(time.monotonic() - started)
        finally:
            await layer.flush()
    assert min(waits) < 0.05, waits


@pytest.mark.redis
async def test_redis_layer_reads_at_once_after_its_last_channel_left():
    # channels-redis's reader sleeps 0.1 s at a time while the layer subscribes to nothing:
    # the first socket after an idle spell got its first messages up to 0.1 s late. The best
    # of three idle spells, so that one slow moment of the machine does not decide.
    layer = _redis_layer()
    waits = []
    try:
        for _ in range(3):
            channel = await layer.new_channel()
            receiving = asyncio.ensure_future(layer.receive(channel))
            await asyncio.sleep(0.01)
            receiving.cancel()  # the consumer leaving: its channel is unsubscribed
            with pytest.raises(asyncio.CancelledError):
                await receiving
            await asyncio.sleep(0.005)  # the reader has seen that nothing is subscribed

            channel = await layer.new_channel()
            started = time.monotonic()
            await layer.send(channel, {"type": "x"})
            assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": "x"}
            waits.append(time.monotonic() - started)
            receiving = asyncio.ensure_future(layer.receive(channel))
            await asyncio.sleep(0)
            receiving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await receiving
    finally:
        await layer.flush()
    assert min(waits) < 0.05, waits
