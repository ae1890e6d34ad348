"""The publisher of a process that serves no sockets (a command) delivers before it exits."""

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
