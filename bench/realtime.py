"""Realtime benchmark (run by hand; results go to docs/benchmarks.md).

(a) Token relay latency: the moment a fake Ollama writes a chunk → the moment a WebSocket
    client on Daphne receives its node.token frame, over Redis; beside a bare Redis pub/sub
    round trip measured in the same run.
(b) Fan-out: N sockets subscribed to one execution; events delivered / lost per socket,
    delivery latency, and the Daphne process's RSS.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/realtime.py [--sockets 500]

Needs Redis. Uses a fresh SQLite database in a temporary folder and a Daphne on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canvas.core.events import EXECUTION_FINAL_EVENTS  # noqa: E402

TOKENS = 400
# Two paces: a token every 50 ms (an LLM's pace: every process on the path sleeps between
# tokens, so each hop pays a wake-up) and every 2 ms (the path stays hot, as the bare Redis
# round trip is measured). Daphne runs with token coalescing off: one frame per chunk.
TOKEN_INTERVALS = (0.05, 0.002)
COLLECT_TIMEOUT = 120  # seconds for one socket's whole run


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def token_keys(text: str) -> list[tuple[str, int]]:
    """The (stream, index) of each token in a frame's text ("s1:0 s1:1 ")."""
    keys = []
    for word in text.split():
        stream, _, index = word.rpartition(":")
        keys.append((stream, int(index)))
    return keys


class TimedOllama(ThreadingHTTPServer):
    """An /api/chat that streams TOKENS NDJSON chunks and records when each was written.

    ``one_writer``: every stream's chunks are written by one thread, each stream still paced
    on its own clock (a chunk, then ``interval`` until its next), instead of each connection's
    thread sleeping between its chunks. A hundred streams at 5 ms are 20,000 writes a second:
    a thread per stream spent ~75 % of a core on them (thread wake-ups and the GIL handed
    around), on the same two cores as the server under test; one writer spends a fraction of
    that. A real provider streams from another machine.
    """

    daemon_threads = True

    request_queue_size = 256  # many streams may start at once (bench/client.py: 100)

    def __init__(self, tokens: int = TOKENS, *, one_writer: bool = False):
        # (stream, index) -> when the chunk was written; the stream is the prompt's text.
        self.sent: dict[tuple[str, int], float] = {}
        self.tokens = tokens
        self.interval = TOKEN_INTERVALS[0]
        # Streams wait for this before their first token (set: they start at once).
        self.go = threading.Event()
        self.go.set()
        self.writer = _Writer(self) if one_writer else None
        super().__init__(("127.0.0.1", 0), self.Handler)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802 - http.server's name
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            messages = request.get("messages") or [{"content": ""}]
            stream = messages[-1]["content"].strip() or "t"
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.server.go.wait()
            if self.server.writer is not None:
                self.server.writer.stream(self.wfile, stream)  # returns at the stream's end
                return
            for index in range(self.server.tokens):
                write_chunk(self.wfile, token_line(stream, index))
                self.server.sent[(stream, index)] = time.perf_counter()
                time.sleep(self.server.interval)
            write_chunk(self.wfile, final_line(self.server.tokens))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


def token_line(stream: str, index: int) -> bytes:
    line = {
        "model": "bench",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": f"{stream}:{index} "},
        "done": False,
    }
    return json.dumps(line).encode() + b"\n"


def final_line(tokens: int) -> bytes:
    final = {
        "model": "bench",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "total_duration": 1,
        "load_duration": 1,
        "prompt_eval_count": 1,
        "prompt_eval_duration": 1,
        "eval_count": tokens,
        "eval_duration": 1,
    }
    return json.dumps(final).encode() + b"\n"


def write_chunk(wfile, data: bytes) -> None:
    wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    wfile.flush()


class _Writer:
    """``TimedOllama(one_writer=True)``: one thread writes every stream's chunks when due."""

    def __init__(self, server: TimedOllama):
        self.server = server
        # (when, tie-break, [wfile, stream, index, done]), the earliest first
        self.due: list[tuple[float, int, list]] = []
        self.count = 0
        self.wake = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def stream(self, wfile, stream: str) -> None:
        done = threading.Event()
        with self.wake:
            self.count += 1
            heapq.heappush(self.due, (time.perf_counter(), self.count, [wfile, stream, 0, done]))
            self.wake.notify()
        done.wait()

    def _run(self) -> None:
        server = self.server
        while True:
            with self.wake:
                while not self.due or self.due[0][0] > time.perf_counter():
                    self.wake.wait(None if not self.due else self.due[0][0] - time.perf_counter())
                now = time.perf_counter()
                ready = []
                while self.due and self.due[0][0] <= now:
                    ready.append(heapq.heappop(self.due))
            for _when, tie, entry in ready:
                wfile, stream, index, done = entry
                try:
                    if index < server.tokens:
                        write_chunk(wfile, token_line(stream, index))
                        written = time.perf_counter()
                        server.sent[(stream, index)] = written
                        entry[2] = index + 1
                        with self.wake:
                            heapq.heappush(self.due, (written + server.interval, tie, entry))
                        continue
                    write_chunk(wfile, final_line(server.tokens))
                    wfile.write(b"0\r\n\r\n")
                    wfile.flush()
                except OSError:
                    pass  # the client went away
                done.set()


def served_env(database_url: str) -> dict[str, str]:
    """A Daphne's environment for a bench: production settings (DEBUG off) on loopback."""
    return {
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": "bench-" + "k" * 60,
        "ALLOWED_HOSTS": "127.0.0.1",
        "CRYPTOGRAPHY_KEY": "bench",
        "SECURE_SSL_REDIRECT": "0",
    }


def setup_django(database_url: str):
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")
    os.environ["DEBUG"] = "1"
    import django

    django.setup()


# The output port each chained node type feeds the next node from.
OUTPUT_PORT = {"input": "value", "text": "text", "template": "text", "llm": "text"}


def create_chain(user, name: str, nodes: list[tuple[str, dict, str | None]]) -> str:
    """A graph through the graph service: nodes (type, config, the input port fed by the
    previous node's output), each feeding the next. Returns its id."""
    import uuid

    from graphs.services import graph_create

    ids = [str(uuid.uuid4()) for _ in nodes]
    docs = [
        {"id": node_id, "type": node_type, "config": config}
        for node_id, (node_type, config, _) in zip(ids, nodes, strict=True)
    ]
    edges = [
        {
            "source": ids[i - 1],
            "source_port": OUTPUT_PORT[nodes[i - 1][0]],
            "target": ids[i],
            "target_port": port,
        }
        for i, (_, _, port) in enumerate(nodes)
        if i
    ]
    return str(graph_create(owner=user, name=name, nodes=docs, edges=edges).graph.id)


def bench_user() -> tuple[object, str]:
    """The bench's user and its API token."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(username="bench", password="bench-pass-123")  # noqa: S106
    return user, Token.objects.create(user=user).key


def make_fixtures(n_chain: int):
    user, token = bench_user()

    def chain(name, nodes):
        return create_chain(user, name, nodes)

    llm = chain(
        "llm",
        [
            ("text", {"text": "go"}, None),
            ("llm", {"provider": "ollama", "model": "bench"}, "prompt"),
        ],
    )
    # A chain of trivial nodes: many persisted events for the fan-out test.
    trivial = chain(
        "chain",
        [("text", {"text": "x"}, None)] + [("template", {"template": "{v}."}, "v")] * n_chain,
    )
    return token, llm, trivial


def start_run(base: str, token: str, graph_id: str) -> str:
    import requests

    response = requests.post(
        f"{base}/api/graphs/{graph_id}/executions/",
        json={"inputs": {}},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["id"]


async def bare_redis_round_trips(redis_url: str, n: int = 2000, pace: float = 0.0) -> list[float]:
    """PUBLISH → the same process's subscriber has it, ``pace`` seconds apart (0: back to back,
    the hop at its fastest; at a token's pace the processes sleep in between, as on the relay)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe("bench-bare")
    await pubsub.get_message(timeout=1)
    samples = []
    for _ in range(n):
        if pace:
            await asyncio.sleep(pace)
        start = time.perf_counter()
        await client.publish("bench-bare", b"x")
        while not await pubsub.get_message(timeout=1):
            pass
        samples.append((time.perf_counter() - start) * 1000)
    await pubsub.aclose()
    await client.aclose()
    return samples


async def token_latency(ws_base: str, base: str, token: str, graph_id: str, fake: TimedOllama):
    """Latency of each token written after the subscription was confirmed (tokens are live
    only: the ones written while the subscription was being set up arrive when it is, and
    measure the subscription, reported apart). Returns (latencies, subscribe ms)."""
    import websockets

    fake.sent.clear()
    received: dict[int, float] = {}
    async with websockets.connect(f"{ws_base}/ws/?token={token}") as ws:
        execution = await asyncio.to_thread(start_run, base, token, graph_id)
        asked = time.perf_counter()
        await ws.send(json.dumps({"type": "subscribe", "topic": f"execution:{execution}"}))
        subscribed = None
        while True:
            frame = json.loads(await ws.recv())
            now = time.perf_counter()
            if frame.get("type") == "subscribed":
                subscribed = now
            if frame.get("event") == "node.token":
                for key in token_keys(frame["data"]["text"]):
                    received[key] = now
            if frame.get("event", "").startswith("execution.") and frame["event"] != (
                "execution.started"
            ):
                break
    live = [i for i in received if i in fake.sent and fake.sent[i] > subscribed]
    return [(received[i] - fake.sent[i]) * 1000 for i in live], (subscribed - asked) * 1000


async def fan_out(
    ws_base: str,
    base: str,
    token: str,
    graph_id: str,
    sockets: int,
    gate: threading.Event | None = None,
    received: Callable[[], None] | None = None,
):
    """N sockets on one run: the run starts, then every socket subscribes (``after: 0``).

    Without ``gate`` a short run has ended before the subscribes arrive, so each socket gets
    the events from its replay. With ``gate`` (the fake Ollama's, holding the run's LLM node)
    every socket has its ``subscribed`` reply before the gate opens: the rest of the run's
    events reach the sockets live, as the floor's do, and only those are timed (the few
    stamped before the gate opened are replayed on subscribe: their seqs are checked, but
    their ``ts`` → receipt is the 500 subscribes' time, which the floor does not measure).
    ``received`` is called once every socket has its terminal frame, before they close."""
    import websockets

    connections = []
    for _ in range(sockets):
        connections.append(await websockets.connect(f"{ws_base}/ws/?token={token}", max_queue=None))
    execution = await asyncio.to_thread(start_run, base, token, graph_id)
    topic = f"execution:{execution}"
    for ws in connections:
        await ws.send(json.dumps({"type": "subscribe", "topic": topic, "after": 0}))
    opened = None
    if gate is not None:
        for ws in connections:  # "subscribed" comes before any event of the replay
            while (
                json.loads(await asyncio.wait_for(ws.recv(), timeout=120))["type"] != "subscribed"
            ):
                pass
        opened = time.time()
        gate.set()
    results = await asyncio.gather(*(collect_events(ws, since=opened) for ws in connections))
    if received is not None:
        received()  # every socket has its terminal frame; the closes come next
    for ws in connections:
        await ws.close()
    return results


async def connect_sockets(base: str, token: str, ids: list[str], per_execution: int) -> list:
    """``per_execution`` client sockets for each execution of ``ids``, as (socket, execution)
    pairs, token-authenticated, no compression, unbounded receive queue."""
    import websockets

    ws_base = base.replace("http://", "ws://")
    sockets = []
    for execution in ids:
        for _ in range(per_execution):
            ws = await websockets.connect(
                f"{ws_base}/ws/?token={token}", max_queue=None, compression=None
            )
            sockets.append((ws, execution))
    return sockets


async def collect_events(ws, since: float | None = None) -> tuple[list[int], list[float]]:
    """Sequenced event frames on one socket until the run's terminal event: their seqs, and
    each frame's latency from its ``ts`` (the moment the event was stamped) to its receipt
    (``since``: only of events stamped at or after that time)."""
    from datetime import datetime

    seqs, latencies = [], []
    # One deadline for the whole run, not ``wait_for`` on each ``recv``: in Python 3.11 that
    # wraps every receive in a task, 12 us a frame here. The fan-outs' 500 sockets share this
    # one process, so that was 0.65 s of the clients' CPU per 52,500 frames, and it showed in
    # every latency measured here, the floor's included.
    async with asyncio.timeout(COLLECT_TIMEOUT):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") != "event" or "seq" not in frame:
                continue
            seqs.append(frame["seq"])
            sent = datetime.fromisoformat(frame["ts"]).timestamp()
            if since is None or sent >= since:
                latencies.append((time.time() - sent) * 1000)
            if frame["event"] in EXECUTION_FINAL_EVENTS:
                return seqs, latencies


def fan_out_summary(results: list[tuple[list[int], list[float]]]) -> dict:
    """Events per socket checked against the gapless 1..N, and the latencies pooled."""
    expected = max(max(seqs) for seqs, _ in results)
    latencies = [lat for _, lats in results for lat in lats]
    return {
        "events": expected,
        "timed": len(latencies),
        "complete": sum(1 for seqs, _ in results if seqs == list(range(1, expected + 1))),
        "lost": sum(expected - len(set(seqs)) for seqs, _ in results),
        "duplicates": sum(len(seqs) - len(set(seqs)) for seqs, _ in results),
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
    }


# --- the floor: the same path with nothing but asyncio, redis-py and websockets -------------


async def floor_relay_serve(port: int, ollama_url: str, redis_url: str) -> None:
    """A relay with no Django, no Channels and no threads, in its own process like Daphne:
    on "start" from a socket client it POSTs to the fake, reads the chunked NDJSON stream on
    the loop, publishes each chunk's text to Redis, and a pub/sub reader on the same loop
    writes each message to the socket. What any Python relay of tokens over Redis costs here."""
    from urllib.parse import urlsplit

    import redis.asyncio as aioredis
    import websockets

    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe("bench-floor")
    await pubsub.get_message(timeout=1)
    sockets = set()

    async def relay_out():
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message:
                for ws in list(sockets):
                    await ws.send(message["data"].decode())

    async def stream_in():
        url = urlsplit(ollama_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        body = json.dumps({"model": "bench", "messages": [], "stream": True}).encode()
        writer.write(
            b"POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        while (await reader.readline()).strip():  # status line and headers
            pass
        while size := int((await reader.readline()).strip() or b"0", 16):
            line = json.loads(await reader.readexactly(size))
            await reader.readexactly(2)
            if line.get("done"):
                break
            text = line["message"]["content"]
            await client.publish("bench-floor", json.dumps({"event": "node.token", "text": text}))
        writer.close()
        await client.publish("bench-floor", json.dumps({"event": "done"}))

    async def handler(ws):
        sockets.add(ws)
        try:
            async for _ in ws:
                asyncio.get_running_loop().create_task(stream_in())
        finally:
            sockets.discard(ws)

    asyncio.get_running_loop().create_task(relay_out())
    async with websockets.serve(handler, "127.0.0.1", port):
        print("ready", flush=True)
        await asyncio.Future()


async def floor_latency(port: int, fake: TimedOllama) -> list[float]:
    import websockets

    fake.sent.clear()
    received: dict[int, float] = {}
    async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send("start")
        while True:
            frame = json.loads(await ws.recv())
            now = time.perf_counter()
            if frame["event"] == "done":
                break
            for key in token_keys(frame["text"]):
                received[key] = now
    return [(received[i] - fake.sent[i]) * 1000 for i in received if i in fake.sent]


def floor_relay(redis_url: str, fake: TimedOllama) -> list[float]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ollama_url = f"http://127.0.0.1:{fake.server_address[1]}"
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, __file__, "--floor-relay", str(port), ollama_url, redis_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        return asyncio.run(floor_latency(port, fake))
    finally:
        process.terminate()
        process.wait(10)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--chain", type=int, default=50, help="template nodes in the fan-out run")
    parser.add_argument("--floor-relay", nargs=3, help=argparse.SUPPRESS)  # the floor's process
    args = parser.parse_args()
    if args.floor_relay:
        port, ollama_url, redis_url = args.floor_relay
        asyncio.run(floor_relay_serve(int(port), ollama_url, redis_url))
        return
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        sys.exit("bench/realtime.py needs REDIS_URL")

    workdir = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    database_url = f"sqlite:///{workdir / 'db.sqlite3'}"
    env = {
        **os.environ,
        **served_env(database_url),
        "REALTIME_RATE_LIMIT_BURST": "1000",
        "REALTIME_RATE_LIMIT_PER_SECOND": "1000",
        "WORKFLOW_TOKEN_COALESCE_MS": "0",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)  # noqa: S603
    setup_django(database_url)
    token, llm_graph, chain_graph = make_fixtures(args.chain)

    fake = TimedOllama()
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    env["OLLAMA_BASE_URL"] = f"http://127.0.0.1:{fake.server_address[1]}"

    from tests.live import daphne_process

    with daphne_process(env) as (base, daphne):
        ws_base = base.replace("http://", "ws://")
        bare = asyncio.run(bare_redis_round_trips(redis_url))
        relays = {}
        for interval in TOKEN_INTERVALS:
            fake.interval = interval
            relay, subscribe_ms = asyncio.run(token_latency(ws_base, base, token, llm_graph, fake))
            paced = asyncio.run(bare_redis_round_trips(redis_url, n=TOKENS, pace=interval))
            relays[interval] = (relay, subscribe_ms, paced, floor_relay(redis_url, fake))
        rss_before = rss_mib(daphne.pid)
        results = asyncio.run(fan_out(ws_base, base, token, chain_graph, args.sockets))
        rss_after = rss_mib(daphne.pid)

    fan = fan_out_summary(results)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"date: {time.strftime('%Y-%m-%d')}")
    print(
        f"bare Redis pub/sub round trip, back to back: p50 {pct(bare, 50):.3f} ms, "
        f"p99 {pct(bare, 99):.3f} ms"
    )
    for interval, (relay, subscribe_ms, paced, floor) in relays.items():
        pace = f"a token every {interval * 1000:g} ms"
        print(f"{pace}:")
        print(
            f"  bare Redis pub/sub round trip at that pace: p50 {pct(paced, 50):.3f} ms, "
            f"p99 {pct(paced, 99):.3f} ms"
        )
        print(
            f"  token relay (fake chunk written -> socket frame), {len(relay)} live tokens "
            f"(subscribe took {subscribe_ms:.0f} ms): p50 {pct(relay, 50):.2f} ms, "
            f"p99 {pct(relay, 99):.2f} ms, max {max(relay):.2f} ms, "
            f"mean {statistics.mean(relay):.2f} ms"
        )
        print(
            f"  floor relay (asyncio + redis-py + websockets, no Django), {len(floor)}/{TOKENS} "
            f"tokens: p50 {pct(floor, 50):.2f} ms, p99 {pct(floor, 99):.2f} ms, "
            f"max {max(floor):.2f} ms"
        )
    print(
        f"fan-out: {args.sockets} sockets x {fan['events']} persisted events: "
        f"{fan['complete']} sockets complete, {fan['lost']} lost, {fan['duplicates']} duplicates;"
        f" event ts -> receive p50 {fan['p50']:.1f} ms, p99 {fan['p99']:.1f} ms; Daphne RSS "
        f"{rss_before:.0f} MiB before, {rss_after:.0f} MiB after"
    )


if __name__ == "__main__":
    main()
