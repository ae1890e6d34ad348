"""``canvas.asgi``'s application plus one bench-only HTTP route (``bench/relay_cpu.py``):
``POST /__bench/emit`` {"ids", "node", "pieces", "pace"} starts a thread in this process that
publishes ``node.token`` pieces to those runs' topics as a node's ``TokenStream`` does. Never
served outside the bench."""

from __future__ import annotations

import json
import threading
import time

from canvas.asgi import application as canvas_application
from canvas.core.events import NODE_TOKEN, execution_topic
from canvas.core.publisher import publish_on_commit


def _emit(ids: list[str], node: str, pieces: int, pace: float) -> None:
    topics = [execution_topic(i) for i in ids]
    offsets = dict.fromkeys(topics, 0)
    start = time.perf_counter()
    for index in range(pieces + 1):
        for topic in topics:
            text = "done" if index == pieces else f"{time.perf_counter():.6f}"
            publish_on_commit(
                topic,
                NODE_TOKEN,
                {"node": node, "index": index, "count": 1, "text": text},
                stream={"attempt": 1, "offset": offsets[topic]},
            )
            offsets[topic] += len(text)
        delay = start + (index + 1) * pace - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/__bench/emit":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        args = json.loads(body)
        threading.Thread(
            target=_emit,
            args=(args["ids"], args["node"], args["pieces"], args["pace"]),
            daemon=True,
        ).start()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await canvas_application(scope, receive, send)
