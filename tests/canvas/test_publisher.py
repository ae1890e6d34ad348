"""The publisher: a process that serves no sockets (a command) delivers before it exits; a
layer that publishes a backlog at once gets what is queued in one call, in order."""

import asyncio
import os
import sys

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

from tests.live import BASE_DIR

PUBLISH_AND_EXIT = """
import django
django.setup()
from canvas.core.publisher import publish
for i in range(200):
    publish("publisher-exit-test", {"type": "x", "i": i})
"""


@pytest.mark.redis
async def test_messages_published_just_before_exit_are_delivered():
    layer = get_channel_layer(settings.EVENTS_CHANNEL_LAYER)
    channel = await layer.new_channel()
    await layer.group_add("publisher-exit-test", channel)

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PUBLISH_AND_EXIT,
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "canvas.settings"},
    )
    assert await process.wait() == 0

    received = [(await asyncio.wait_for(layer.receive(channel), 5))["i"] for _ in range(200)]
    assert received == list(range(200))
    await layer.group_discard("publisher-exit-test", channel)


class _BatchingLayer:
    """A layer with group_send_many that holds each call until released, so the publisher's
    queue fills behind it."""

    def __init__(self):
        self.calls: list[list[tuple[str, dict]]] = []
        self.release = asyncio.Event()

    async def group_send_many(self, messages):
        self.calls.append(messages)
        if len(self.calls) == 1:
            await self.release.wait()
        if any(m.get("fail") for _, m in messages):
            raise RuntimeError("layer down")


async def test_the_drain_hands_a_backlog_to_group_send_many_in_order(monkeypatch):
    from canvas.core import publisher as publisher_module

    layer = _BatchingLayer()
    monkeypatch.setattr(publisher_module, "get_channel_layer", lambda alias: layer)
    monkeypatch.setattr(publisher_module, "DRAIN_BATCHES", 3)
    loop = asyncio.get_running_loop()
    pub = publisher_module.Publisher(alias="events")
    pub.bind_loop(loop)

    pub.publish("a", {"n": 0})
    while not layer.calls:
        await asyncio.sleep(0.01)
    pub.publish_many("a", [{"n": 1}, {"n": 2}])
    pub.publish("b", {"n": 3})
    pub.publish("b", {"n": 4, "fail": True})  # a failing send is logged, the drain goes on
    pub.publish("a", {"n": 5})
    await asyncio.sleep(0.05)
    layer.release.set()
    assert await asyncio.to_thread(pub.flush, 5)

    try:
        assert layer.calls == [
            [("a", {"n": 0})],
            [("a", {"n": 1}), ("a", {"n": 2}), ("b", {"n": 3}), ("b", {"n": 4, "fail": True})],
            [("a", {"n": 5})],
        ]
    finally:
        for task in asyncio.all_tasks():
            if task.get_coro().__qualname__ == "Publisher._drain":
                task.cancel()
