"""The consumer's relay of a batch of events (``realtime.events``) to many sockets."""

import asyncio
import uuid

from canvas.consumers import RELAY_DRAIN, RELAY_YIELD_EVERY, CanvasConsumer
from canvas.core import events, realtime
from canvas.core.layers import SharedInMemoryChannelLayer
from canvas.core.streams import TextStreams


def batch(execution: uuid.UUID, count: int) -> list[dict]:
    topic = events.execution_topic(execution)
    messages = []
    for seq in range(1, count + 1):
        node = {"node": f"n{seq}", "type": "template", "label": "t", "attempt": 1}
        messages.append(
            realtime.with_encoded_frame(
                realtime.event_message(
                    topic=topic,
                    event=events.NODE_STARTED,
                    data={**node, "status": "running"},
                    ts="2026-11-28T12:00:00Z",
                    seq=seq,
                )
            )
        )
    return messages


def subscribed_consumer(
    execution: uuid.UUID, log: list, index: int, scope: dict | None = None
) -> CanvasConsumer:
    """A consumer subscribed to the run whose socket sends append (index, frame) to ``log``."""
    consumer = CanvasConsumer()
    consumer.scope = {"type": "websocket", **(scope or {})}
    name = events.execution_topic(execution)

    async def send(message):
        log.append((index, message["text"]))

    consumer.base_send = send
    consumer.relay_lock = asyncio.Lock()
    consumer.subscriptions = {
        name: {
            "topic": realtime.get_topic(events.EXECUTION),
            "object_id": execution,
            "group": events.group_name(name),
            "sequenced": True,
            "last_seq": 0,
            "final": False,
            "streams": TextStreams(),
        }
    }
    return consumer


async def test_sockets_relaying_one_batch_take_turns_so_frames_leave_early():
    # Every socket of a group relays the same batch in one loop iteration. The loop writes a
    # socket's queued frames only when it next polls, so each relay pauses every
    # RELAY_YIELD_EVERY events: the first frames go out while later ones are still relayed.
    execution = uuid.uuid4()
    messages = batch(execution, 3 * RELAY_YIELD_EVERY)
    message = realtime.events_message(topic=events.execution_topic(execution), events=messages)
    log: list = []
    consumers = [subscribed_consumer(execution, log, index) for index in range(3)]

    await asyncio.gather(*(consumer.dispatch(message) for consumer in consumers))

    # Each socket got the whole batch, in order, as the publisher encoded it.
    for index in range(3):
        assert [text for i, text in log if i == index] == [m["encoded"] for m in messages]
    # The last socket's first frame was sent before the first socket's last one.
    first_of_last = log.index((2, messages[0]["encoded"]))
    last_of_first = log.index((0, messages[-1]["encoded"]))
    assert first_of_last < last_of_first
    assert [i for i, _ in log[: 3 * RELAY_YIELD_EVERY]] == [
        i for i in range(3) for _ in range(RELAY_YIELD_EVERY)
    ]


async def test_a_batch_after_an_unsubscribe_midway_stops_there():
    execution = uuid.uuid4()
    messages = batch(execution, 2 * RELAY_YIELD_EVERY)
    log: list = []
    consumer = subscribed_consumer(execution, log, 0)
    name = events.execution_topic(execution)

    async def unsubscribe_at_the_pause():
        consumer.subscriptions.pop(name)

    relay = asyncio.ensure_future(
        consumer.dispatch(realtime.events_message(topic=name, events=messages))
    )
    await asyncio.sleep(0)  # the relay runs up to its first pause
    await unsubscribe_at_the_pause()
    await relay

    assert len(log) == RELAY_YIELD_EVERY


async def test_messages_queued_behind_one_are_relayed_with_it_in_order_up_to_the_drain():
    # A backlogged socket relays the messages already queued for it in the same wake-up
    # (without a receive task each), in order, at most RELAY_DRAIN of them; the rest wait for
    # Channels' next receive, and nothing is lost or reordered.
    execution = uuid.uuid4()
    messages = batch(execution, RELAY_DRAIN + 3)
    log: list = []
    consumer = subscribed_consumer(execution, log, 0)
    consumer.channel_layer = layer = SharedInMemoryChannelLayer()
    consumer.channel_name = await layer.new_channel()
    group = events.group_name(events.execution_topic(execution))
    await layer.group_add(group, consumer.channel_name)
    for message in messages:
        await layer.group_send(group, message)

    await consumer.dispatch(await layer.receive(consumer.channel_name))
    assert log == [(0, m["encoded"]) for m in messages[: 1 + RELAY_DRAIN]]

    await consumer.dispatch(await layer.receive(consumer.channel_name))
    assert log == [(0, m["encoded"]) for m in messages]
    assert layer.receive_nowait(consumer.channel_name) is None
    assert consumer.channel_name not in layer.channels


def writing_server(log: list, refuse=lambda text: False) -> dict:
    """A scope offering the server's text writer (canvas.daphne_server's extension): it
    appends ("written", text) to ``log``, or refuses a text ``refuse`` picks."""

    def write(text: str) -> bool:
        if refuse(text):
            return False
        log.append(("written", text))
        return True

    return {"extensions": {realtime.WRITE_TEXT_EXTENSION: {"write": write}}}


async def test_where_the_server_offers_its_writer_encoded_frames_are_written_by_it():
    execution = uuid.uuid4()
    messages = batch(execution, 2 * RELAY_YIELD_EVERY + 3)
    name = events.execution_topic(execution)
    log: list = []
    consumer = subscribed_consumer(execution, log, "sent", scope=writing_server(log))

    await consumer.dispatch(realtime.events_message(topic=name, events=messages))
    frame = realtime.with_encoded_frame(realtime.frame_message(topic=name, frame={"x": 1}))
    await consumer.dispatch(frame)

    assert log == [("written", m["encoded"]) for m in [*messages, frame]]


async def test_a_frame_the_writer_refuses_goes_through_send_in_its_place():
    # The writer refuses what autobahn must send itself (say, frames queued ahead): those go
    # through ASGI's send, and the socket still gets every frame once, in order.
    execution = uuid.uuid4()
    messages = batch(execution, 12)
    refused = {m["encoded"] for m in messages[3:5] + messages[9:10]}
    log: list = []
    consumer = subscribed_consumer(
        execution, log, "sent", scope=writing_server(log, refuse=refused.__contains__)
    )

    await consumer.dispatch(
        realtime.events_message(topic=events.execution_topic(execution), events=messages)
    )

    assert [text for _, text in log] == [m["encoded"] for m in messages]
    assert {text for how, text in log if how == "sent"} == refused


async def test_every_text_frame_goes_through_the_writer_and_the_rest_through_asgi():
    # Replies (send_json) take the server's write too; binary frames and closes do not.
    log: list = []
    consumer = subscribed_consumer(uuid.uuid4(), log, "sent", scope=writing_server(log))
    sent: list = []

    async def base_send(message):
        sent.append(message)

    consumer.base_send = base_send

    await consumer.send_json({"type": "pong"})
    await consumer.send(bytes_data=b"\x00")
    await consumer.close(code=4000)

    assert log == [("written", '{"type": "pong"}')]
    assert [m["type"] for m in sent] == ["websocket.send", "websocket.close"]
    assert sent[0]["bytes"] == b"\x00"
