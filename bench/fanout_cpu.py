"""One process, no sockets: the CPU a batch of events costs to reach N consumers' sends.

    .venv/bin/python bench/fanout_cpu.py [--sockets 500] [--events 100] [--repeat 3]

The real ``CanvasConsumer`` relays (seq check, stream marks, frames) with its socket's send
replaced by a byte counter, on the in-memory layer, for one ``realtime.events`` message of a
run's events (``node.started`` / ``node.completed`` pairs of template nodes, as a 52-node
chain's final flush publishes them). Four ways, interleaved, each adding one change:

- before: Channels' ``InMemoryChannelLayer`` (one ``deepcopy`` per member), each consumer
  encoding each frame, Channels' ``dispatch`` (a thread hop to close old database connections
  per message per consumer): what the code did before issue 15's fan-out changes;
- shared copy: ``SharedInMemoryChannelLayer`` (one copy per ``group_send``);
- encoded once: the publisher's ``with_encoded_frame`` once per event, the consumer sending
  the text;
- no hop: ``CanvasConsumer.dispatch``, which relays group messages without that hop.

Reports process CPU seconds for the publish side (encoding + ``group_send``) and the receive
side (N consumers receiving, dispatching and sending) and the receive side's wall time
(the hops wait on a thread), medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")


def run_events(execution: uuid.UUID, count: int) -> list[dict]:
    from canvas.core import events, realtime

    topic = events.execution_topic(execution)
    ts = "2026-11-28T12:00:00.123456Z"
    messages = [
        realtime.event_message(
            topic=topic, event=events.EXECUTION_STARTED, data={"status": "running"}, ts=ts, seq=1
        )
    ]
    node = 0
    while len(messages) < count - 1:
        nid = str(uuid.uuid4())
        base = {"node": nid, "type": "template", "label": f"Template {node}"}
        messages.append(
            realtime.event_message(
                topic=topic,
                event=events.NODE_STARTED,
                data={**base, "status": "running", "attempt": 1},
                ts=ts,
                seq=len(messages) + 1,
            )
        )
        text = f"step {node}: " + "the quick brown fox jumps over the lazy dog " * 2
        messages.append(
            realtime.event_message(
                topic=topic,
                event=events.NODE_COMPLETED,
                data={**base, "status": "succeeded", "outputs": {"text": text}, "attempt": 1},
                ts=ts,
                seq=len(messages) + 1,
            )
        )
        node += 1
    messages.append(
        realtime.event_message(
            topic=topic,
            event=events.EXECUTION_COMPLETED,
            data={"status": "succeeded", "outputs": {"out": "done"}},
            ts=ts,
            seq=len(messages) + 1,
        )
    )
    return messages


async def one_round(sockets: int, count: int, shared: bool, encoded: bool, hop: bool) -> tuple:
    from channels.generic.websocket import AsyncJsonWebsocketConsumer
    from channels.layers import InMemoryChannelLayer

    from canvas.consumers import CanvasConsumer
    from canvas.core import events, realtime
    from canvas.core.layers import SharedInMemoryChannelLayer
    from canvas.core.streams import TextStreams

    layer = SharedInMemoryChannelLayer() if shared else InMemoryChannelLayer()
    execution = uuid.uuid4()
    name = events.execution_topic(execution)
    group = events.group_name(name)
    topic = realtime.get_topic(events.EXECUTION)
    sent = [0]

    async def count_bytes(message):
        sent[0] += len(message["text"])

    consumers = []
    for _ in range(sockets):
        consumer = CanvasConsumer()
        consumer.scope = {"type": "websocket"}
        consumer.channel_layer = layer
        consumer.channel_name = await layer.new_channel()
        consumer.base_send = count_bytes
        consumer.relay_lock = asyncio.Lock()
        consumer.subscriptions = {
            name: {
                "topic": topic,
                "object_id": execution,
                "group": group,
                "sequenced": True,
                "last_seq": 0,
                "final": False,
                "streams": TextStreams(),
            }
        }
        await layer.group_add(group, consumer.channel_name)
        consumers.append(consumer)
    batch = run_events(execution, count)

    async def relay(consumer):
        message = await layer.receive(consumer.channel_name)
        if hop:
            await AsyncJsonWebsocketConsumer.dispatch(consumer, message)
        else:
            await consumer.dispatch(message)

    cpu = time.process_time()
    if encoded:
        batch = [realtime.with_encoded_frame(message) for message in batch]
    await layer.group_send(group, realtime.events_message(topic=name, events=batch))
    publish = time.process_time() - cpu
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(relay(consumer) for consumer in consumers))
    receive, wall = time.process_time() - cpu, time.perf_counter() - wall
    return publish, receive, wall, sent[0]


WAYS = {
    "before": (False, False, True),
    "shared copy": (True, False, True),
    "encoded once": (True, True, True),
    "no hop": (True, True, False),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import django

    django.setup()
    print(
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; load average {os.getloadavg()}; "
        f"{args.events} events to {args.sockets} consumers, CPU s, median of {args.repeat}"
    )
    results: dict[str, list[tuple]] = {way: [] for way in WAYS}
    for _ in range(args.repeat):
        for way, flags in WAYS.items():
            results[way].append(asyncio.run(one_round(args.sockets, args.events, *flags)))
    sizes = {way: {r[3] for r in rounds} for way, rounds in results.items()}
    assert len(set().union(*sizes.values())) == 1, sizes  # the same bytes reached the sockets
    for way, rounds in results.items():
        publish, receive, wall = (statistics.median(r[i] for r in rounds) for i in range(3))
        print(
            f"  {way:>12}: publish {publish:.2f} s, receive+send {receive:.2f} s "
            f"(wall {wall:.2f} s), CPU total {publish + receive:.2f} s"
        )


if __name__ == "__main__":
    main()
