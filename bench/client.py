"""What a user waits for, measured from the client, beside a floor measured in the same run.

    .venv/bin/python bench/client.py                       # everything, SQLite
    .venv/bin/python bench/client.py --only runs,rate      # parts: runs, rate, fanout,
                                                           # fanout-live, streams
    .venv/bin/python bench/client.py --memory 10000        # RSS over a long run of small runs
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h15_bench REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/client.py --only runs,rate

The server is Daphne with ``make run``'s settings and DEBUG off (the inline executor in its
process; SQLite unless DATABASE_URL is set; the in-memory channel layer unless REDIS_URL is).
The only settings changed are the per-socket message rate (a client here subscribes and
unsubscribes once per run, far past a person's pace) and request throttling (off).

The method, the same for the server and its floor:

- **T(N)**: a chain ``input → template × (N-2) → output`` run through REST: the client POSTs
  ``/api/graphs/{id}/executions/`` with a fresh input (every node misses the output cache),
  sends ``subscribe`` with ``after: 0`` on its own socket (so nothing published before the
  subscription is missed: it is replayed), and the clock stops when the run's terminal event
  arrives on that socket. 1 warm-up + 5 timed runs per size, server and floor alternating;
  medians and ranges. Per node = (T(200) - T(10)) / 190, from the medians, and the range
  from the i-th run of each.
- **runs/s**: 8 clients, each with its own HTTP connection and socket, running 3-node graphs
  (``input → template → output``) back to back by the same method, for a few seconds; beside
  it, the serving process's CPU per run (``/proc/<pid>/stat`` across the round over the runs
  completed): a throughput bound by one interpreter is about 1000 / that figure.
- **fan-out**: 500 sockets subscribed to one execution of a 52-node chain (105 events),
  event ``ts`` → receipt (``bench/realtime.py``'s method); the floor is an asyncio +
  ``websockets`` server that ``broadcast``s 105 pre-encoded frames to 500 sockets.
- **fan-out live**: the same with every socket subscribed before the run's LLM node (held by
  a fake Ollama) lets the rest of the run go on; only the frames of events stamped after that
  moment are timed, as all of the floor's are (the run's first few events are replayed to each
  socket on subscribe: their seqs are checked, their latency is the 500 subscribes'). Beside
  it, the serving process's CPU from the gate's opening to the last frame, per timed frame.
- **streams**: 100 runs, each an LLM node streaming 200 tokens at 5 ms from a fake Ollama,
  2 sockets subscribed to each (200), the clients in another process; latency from the
  fake's write of a token to its receipt in a frame. The fake writes every stream from one
  thread (``TimedOllama(one_writer=True)``), each stream on its own 5 ms clock: a thread per
  stream took ~75 % of a core from the two the server runs on (since 2026-11-28 18:16).

The floor (``--floor`` process) is aiohttp with no framework: the same POST reads the token
and the graph's rows, writes the execution and its ``execution.queued`` event, answers 202,
then runs the chain on its loop and writes the same rows as the engine (node runs, events,
cache rows, the execution's final state) in one transaction, and sends the same frames (each
encoded once) to the same socket protocol (``subscribe`` with snapshot and replay,
``unsubscribe``). It copies the server's database after the fixtures are made, so both start
from the same rows.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import realtime  # noqa: E402  (the fake Ollama, fixtures, fan-out pieces)
from bench.realtime import pct  # noqa: E402
from canvas.core.events import EXECUTION_FINAL_EVENTS  # noqa: E402

SIZES = (10, 200)
WARMUP, TIMED = 1, 5
CLIENTS = 8
FANOUT_CHAIN = 50  # text + 50 templates: 51 nodes, 105 events
STREAMS, STREAM_TOKENS, STREAM_PACE, SOCKETS_PER_STREAM = 100, 200, 0.005, 2


def server_env(database_url: str) -> dict[str, str]:
    """``make run``'s settings with DEBUG off, plus the bench's two exceptions."""
    env = {
        **realtime.served_env(database_url),
        # A client here subscribes and unsubscribes once per run: hundreds a second.
        "REALTIME_RATE_LIMIT_PER_SECOND": "100000",
        "REALTIME_RATE_LIMIT_BURST": "100000",
        "THROTTLE_RATES": "",
    }
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
        env["CHANNEL_LAYER_PREFIX"] = f"bench{os.getpid()}"
    return env


def migrated(database_url: str) -> dict[str, str]:
    """The served environment for ``database_url``, with that database migrated and this
    process's Django set up on it (for the fixtures)."""
    env = server_env(database_url)
    subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    realtime.setup_django(database_url)
    return env


def served_event_loop() -> str:
    """The event loop the served Daphne runs on (canvas/daphne_server.py's choice)."""
    default = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return os.environ.get("DAPHNE_EVENT_LOOP") or default


def rss_mib(pid: int) -> float:
    return realtime.rss_mib(pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the client: the same for the server and the floor ------------------------------------


class Client:
    """One user: a keep-alive HTTP connection and one socket."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    async def __aenter__(self):
        import aiohttp
        import websockets

        self.http = aiohttp.ClientSession(
            headers={"Authorization": f"Token {self.token}"},
            connector=aiohttp.TCPConnector(limit=1),
        )
        ws_base = self.base.replace("http://", "ws://")
        self.ws = await websockets.connect(
            f"{ws_base}/ws/?token={self.token}", max_queue=None, compression=None
        )
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()
        await self.http.close()

    async def run(self, graph_id: str, inputs: dict) -> float:
        """POST a run, subscribe with ``after: 0``, wait for its terminal event: ms."""
        started = time.perf_counter()
        async with self.http.post(
            f"{self.base}/api/graphs/{graph_id}/executions/", json={"inputs": inputs}
        ) as response:
            body = await response.json()
            if response.status != 202:
                raise RuntimeError(f"POST answered {response.status}: {body}")
        topic = f"execution:{body['id']}"
        await self.ws.send(json.dumps({"type": "subscribe", "topic": topic, "after": 0}))
        async with asyncio.timeout(60):  # one deadline, not a task per frame (wait_for)
            while True:
                frame = json.loads(await self.ws.recv())
                kind = frame.get("type")
                if kind == "error":
                    raise RuntimeError(f"socket error: {frame}")
                if (
                    kind == "event"
                    and frame["topic"] == topic
                    and frame["event"] in EXECUTION_FINAL_EVENTS
                ):
                    break
        elapsed = (time.perf_counter() - started) * 1000
        if frame["event"] != "execution.completed":
            raise RuntimeError(f"run ended {frame['event']}: {frame['data']}")
        # Not timed; its "unsubscribed" reply is skipped by the next run's loop.
        await self.ws.send(json.dumps({"type": "unsubscribe", "topic": topic}))
        return elapsed


def fresh() -> dict:
    return {"x": uuid.uuid4().hex}


async def timed_runs(targets: dict[str, str], token: str, graph_id: str) -> dict[str, list]:
    """1 warm-up + TIMED runs on each target, alternating, each target with its own client."""
    times: dict[str, list[float]] = {name: [] for name in targets}
    async with ExitStackAsync() as stack:
        clients = {name: await stack.enter(Client(base, token)) for name, base in targets.items()}
        for round_ in range(WARMUP + TIMED):
            for name, client in clients.items():
                elapsed = await client.run(graph_id, fresh())
                if round_ >= WARMUP:
                    times[name].append(elapsed)
    return times


async def runs_for(base: str, token: str, graph_id: str, seconds: float) -> tuple[int, float]:
    """CLIENTS clients back to back for ``seconds``: (completed runs, seconds taken)."""
    done = 0
    async with ExitStackAsync() as stack:
        clients = [await stack.enter(Client(base, token)) for _ in range(CLIENTS)]
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        async def loop(client: Client):
            nonlocal done
            while time.perf_counter() < deadline:
                await client.run(graph_id, fresh())
                done += 1

        await asyncio.gather(*(loop(c) for c in clients))
        elapsed = time.perf_counter() - started
    return done, elapsed


class ExitStackAsync:
    """Enter async context managers one by one; exit them all."""

    def __init__(self):
        self.entered = []

    async def enter(self, cm):
        value = await cm.__aenter__()
        self.entered.append(cm)
        return value

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        for cm in reversed(self.entered):
            await cm.__aexit__(None, None, None)


# --- the floor: aiohttp writing the same rows and frames -----------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _db_ts(value: datetime) -> str:
    return str(value.replace(tzinfo=None))  # Django's SQLite form of an aware UTC datetime


class Floor:
    """The least a server does for this protocol: one process, one loop, one connection."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.subscribers: dict[str, dict] = {}  # topic -> {ws: last seq sent}

    def user_for(self, header: str | None) -> int | None:
        key = (header or "").removeprefix("Token ")
        row = self.db.execute(
            "SELECT user_id FROM authtoken_token WHERE key = ?", (key,)
        ).fetchone()
        return row[0] if row else None

    async def post_execution(self, request):
        from aiohttp import web

        user = self.user_for(request.headers.get("Authorization"))
        if user is None:
            return web.json_response({"detail": "unauthenticated"}, status=401)
        graph_id = uuid.UUID(request.match_info["graph_id"]).hex
        body = await request.json()
        graph = self.db.execute(
            "SELECT version FROM graphs_graph WHERE id = ? AND owner_id = ?", (graph_id, user)
        ).fetchone()
        if graph is None:
            return web.json_response({"detail": "not found"}, status=404)
        nodes = [
            {"id": str(uuid.UUID(i)), "type": t, "config": json.loads(c)}
            for i, t, c in self.db.execute(
                "SELECT id, type, config FROM graphs_node WHERE graph_id = ?", (graph_id,)
            )
        ]
        edges = [
            {
                "source": str(uuid.UUID(s)),
                "source_port": sp,
                "target": str(uuid.UUID(t)),
                "target_port": tp,
            }
            for s, sp, t, tp in self.db.execute(
                "SELECT source_id, source_port, target_id, target_port FROM graphs_edge "
                "WHERE graph_id = ?",
                (graph_id,),
            )
        ]
        snapshot = {"graph": graph_id, "version": graph[0], "nodes": nodes, "edges": edges}
        execution = uuid.uuid4()
        now = _now()
        event = {"status": "queued"}
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO workflows_execution (id, created_at, updated_at, owner_id, "
                "graph_id, graph_version, snapshot, inputs, outputs, status, error, queued_at, "
                "worker, cancel_requested) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', 'queued', '', "
                "?, '', 0)",
                (
                    execution.hex,
                    _db_ts(now),
                    _db_ts(now),
                    user,
                    graph_id,
                    graph[0],
                    json.dumps(snapshot),
                    json.dumps(body["inputs"]),
                    _db_ts(now),
                ),
            )
            self.db.execute(
                "INSERT INTO workflows_executionevent (execution_id, seq, event, data, ts) "
                "VALUES (?, 1, 'execution.queued', ?, ?)",
                (execution.hex, json.dumps(event), _db_ts(now)),
            )
        asyncio.get_running_loop().call_soon(self.run, execution, user, snapshot, body["inputs"])
        return web.json_response(
            {"id": str(execution), "status": "queued", "inputs": body["inputs"]}, status=202
        )

    def run(self, execution: uuid.UUID, user: int, snapshot: dict, inputs: dict) -> None:
        """The chain in topological order; every row in one transaction; frames after it."""
        nodes = {n["id"]: n for n in snapshot["nodes"]}
        feeds = {e["target"]: e for e in snapshot["edges"]}
        order, seen = [], set()
        pending = list(nodes)
        while pending:
            rest = []
            for nid in pending:
                edge = feeds.get(nid)
                if edge is None or edge["source"] in seen:
                    order.append(nid)
                    seen.add(nid)
                else:
                    rest.append(nid)
            pending = rest
        started = _now()
        events = [("execution.started", {"status": "running"}, started)]
        runs, cache, values = [], [], {}
        outputs = {}
        for nid in order:
            node, edge = nodes[nid], feeds.get(nid)
            value = values[edge["source"]] if edge else None
            config = node["config"]
            t0 = _now()
            if node["type"] == "input":
                out = {"value": inputs.get(config["name"], config.get("default"))}
            elif node["type"] == "template":
                out = {"text": config["template"].replace("{v}", str(value))}
            elif node["type"] == "text":
                out = {"text": config["text"]}
            else:  # output
                out = {"value": value}
                outputs[config["name"]] = value
            values[nid] = next(iter(out.values()))
            ins = {} if edge is None else {edge["target_port"]: value}
            t1 = _now()
            data = {"node": nid, "type": node["type"], "status": "running"}
            events.append(("node.started", data, t0))
            events.append(("node.completed", {**data, "status": "succeeded", "outputs": out}, t1))
            runs.append((uuid.uuid4().hex, nid, node["type"], ins, out, t0, t1))
            if node["type"] == "template":
                cache.append((uuid.uuid4().hex, node["type"], out, t1))
        finished = _now()
        done = {"status": "succeeded", "outputs": outputs}
        events.append(("execution.completed", done, finished))
        rows = [
            (execution.hex, seq, name, json.dumps(data), _db_ts(ts))
            for seq, (name, data, ts) in enumerate(events, start=2)
        ]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO workflows_noderun (id, created_at, updated_at, execution_id, "
                "node_id, node_type, status, inputs, outputs, error, attempts, queued_at, "
                "started_at, finished_at, usage, cache_key) VALUES (?, ?, ?, ?, ?, ?, "
                "'succeeded', ?, ?, '', 1, ?, ?, ?, NULL, '')",
                [
                    (
                        rid,
                        _db_ts(t0),
                        _db_ts(t1),
                        execution.hex,
                        uuid.UUID(nid).hex,
                        kind,
                        json.dumps(ins),
                        json.dumps(out),
                        _db_ts(t0),
                        _db_ts(t0),
                        _db_ts(t1),
                    )
                    for rid, nid, kind, ins, out, t0, t1 in runs
                ],
            )
            self.db.executemany(
                "INSERT INTO workflows_executionevent (execution_id, seq, event, data, ts) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self.db.executemany(
                "INSERT INTO workflows_nodeoutputcache (key, owner_id, node_type, outputs, "
                "size, created_at, expires_at) VALUES (?, ?, ?, ?, 0, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET outputs = excluded.outputs",
                [(k, user, t, json.dumps(o), _db_ts(ts), _db_ts(ts)) for k, t, o, ts in cache],
            )
            self.db.execute(
                "UPDATE workflows_execution SET status = 'succeeded', started_at = ?, "
                "finished_at = ?, outputs = ?, heartbeat_at = ? WHERE id = ?",
                (
                    _db_ts(started),
                    _db_ts(finished),
                    json.dumps(outputs),
                    _db_ts(finished),
                    execution.hex,
                ),
            )
        self.publish(f"execution:{execution}", rows)

    def frames(self, topic: str, rows) -> list[tuple[int, str]]:
        return [
            (
                seq,
                json.dumps(
                    {
                        "type": "event",
                        "topic": topic,
                        "seq": seq,
                        "event": name,
                        "data": json.loads(data),
                        "ts": ts.replace(" ", "T") + "+00:00",
                    }
                ),
            )
            for _id, seq, name, data, ts in rows
        ]

    def publish(self, topic: str, rows) -> None:
        subscribers = self.subscribers.get(topic)
        if not subscribers:
            return
        for seq, frame in self.frames(topic, rows):  # each encoded once
            for ws, last in list(subscribers.items()):
                if seq > last:
                    subscribers[ws] = seq
                    asyncio.ensure_future(ws.send_str(frame))

    async def socket(self, request):
        from aiohttp import web

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if self.user_for("Token " + request.query.get("token", "")) is None:
            await ws.close(code=4401)
            return ws
        mine = set()
        async for message in ws:
            content = json.loads(message.data)
            topic = content.get("topic", "")
            execution = uuid.UUID(topic.partition(":")[2]).hex
            if content["type"] == "unsubscribe":
                self.subscribers.get(topic, {}).pop(ws, None)
                mine.discard(topic)
                await ws.send_str(json.dumps({"type": "unsubscribed", "topic": topic}))
                continue
            self.subscribers.setdefault(topic, {})[ws] = 1 << 62  # joined; nothing live yet
            mine.add(topic)
            status = self.db.execute(
                "SELECT status FROM workflows_execution WHERE id = ?", (execution,)
            ).fetchone()[0]
            statuses = dict(
                self.db.execute(
                    "SELECT node_id, status FROM workflows_noderun WHERE execution_id = ?",
                    (execution,),
                ).fetchall()
            )
            rows = self.db.execute(
                "SELECT execution_id, seq, event, data, ts FROM workflows_executionevent "
                "WHERE execution_id = ? AND seq > ? ORDER BY seq",
                (execution, content.get("after") or 0),
            ).fetchall()
            snapshot = {"status": status, "nodes": statuses, "last_seq": len(rows)}
            await ws.send_str(
                json.dumps({"type": "subscribed", "topic": topic, "snapshot": snapshot})
            )
            last = content.get("after") or 0
            for seq, frame in self.frames(topic, rows):
                await ws.send_str(frame)
                last = seq
            self.subscribers[topic][ws] = last
        for topic in mine:
            self.subscribers.get(topic, {}).pop(ws, None)
        return ws


def floor_serve(port: int, path: str) -> None:
    from aiohttp import web

    floor = Floor(path)
    app = web.Application()
    app.router.add_post("/api/graphs/{graph_id}/executions/", floor.post_execution)
    app.router.add_get("/ws/", floor.socket)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- the fan-out floor: asyncio + websockets' broadcast of pre-encoded frames --------------


def fanout_floor_serve(port: int, sockets: int, events: int) -> None:
    """Accept ``sockets`` sockets; when the last one has said "subscribe", stamp ``events``
    frames and ``broadcast`` each, pre-encoded, to all of them."""
    from websockets.asyncio.server import broadcast, serve

    async def main():
        connected = set()
        subscribed = asyncio.Event()
        count = 0

        async def handler(ws):
            nonlocal count
            connected.add(ws)
            await ws.recv()
            count += 1
            if count == sockets:
                subscribed.set()
            try:
                await ws.wait_closed()
            finally:
                connected.discard(ws)

        async with serve(handler, "127.0.0.1", port, compression=None):
            print("ready", flush=True)
            await subscribed.wait()
            for seq in range(1, events + 1):
                frame = json.dumps(
                    {
                        "type": "event",
                        "topic": "execution:floor",
                        "seq": seq,
                        "event": "execution.completed" if seq == events else "node.completed",
                        "data": {"node": "n", "status": "succeeded", "outputs": {"text": "x."}},
                        "ts": _now().isoformat(),
                    }
                )
                broadcast(connected, frame)
                await asyncio.sleep(0)
            await asyncio.sleep(120)

    asyncio.run(main())


async def fanout_floor_clients(port: int, sockets: int):
    import websockets

    connections = [
        await websockets.connect(f"ws://127.0.0.1:{port}/", max_queue=None, compression=None)
        for _ in range(sockets)
    ]
    for ws in connections:
        await ws.send(json.dumps({"type": "subscribe", "topic": "execution:floor", "after": 0}))
    results = await asyncio.gather(*(realtime.collect_events(ws) for ws in connections))
    for ws in connections:
        await ws.close()
    return results


@contextmanager
def child(*args: str, env: dict | None = None):
    """This script in another process (a floor server, the stream clients)."""
    process = subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        line = process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"{args[0]} did not start: {line!r}")
        yield process
    finally:
        process.terminate()
        process.wait(10)


# --- the streams: 100 LLM runs, 200 sockets in another process -----------------------------


def stream_clients(base: str, token: str, ids: list[str]) -> None:
    """Subscribe SOCKETS_PER_STREAM sockets to each execution, say "ready", then print
    {"stream:index": receipt time} as JSON once every run ended."""

    received: dict[str, float] = {}

    confirmed = 0
    all_confirmed = asyncio.Event()

    async def follow(ws, execution):
        nonlocal confirmed
        topic = f"execution:{execution}"
        await ws.send(json.dumps({"type": "subscribe", "topic": topic, "after": 0}))
        # One deadline for the run (realtime.collect_events says why not wait_for).
        async with asyncio.timeout(300):
            while True:
                frame = json.loads(await ws.recv())
                now = time.perf_counter()
                if frame.get("type") == "error":
                    raise RuntimeError(f"socket error: {frame}")
                if frame.get("type") == "subscribed":
                    confirmed += 1
                    if confirmed == len(ids) * SOCKETS_PER_STREAM:
                        all_confirmed.set()
                if frame.get("event") == "node.token":
                    for stream, index in realtime.token_keys(frame["data"]["text"]):
                        key = f"{stream}:{index}"
                        received[key] = max(received.get(key, 0.0), now)  # the last socket's
                if frame.get("event") in EXECUTION_FINAL_EVENTS:
                    return frame["event"]

    async def main():
        sockets = await realtime.connect_sockets(base, token, ids, SOCKETS_PER_STREAM)
        print(f"{len(sockets)} sockets connected", file=sys.stderr, flush=True)
        tasks = [asyncio.ensure_future(follow(ws, execution)) for ws, execution in sockets]
        await all_confirmed.wait()  # the runs wait for "go" meanwhile
        print("ready", flush=True)
        ends = await asyncio.gather(*tasks)
        print(json.dumps({"received": received, "ends": ends}), flush=True)
        for ws, _ in sockets:
            await ws.close()

    asyncio.run(main())


def bench_fanout_live(database_url: str, token: str, graph_id: str, sockets: int) -> dict:
    """The fan-out with every socket subscribed before the run's events are stamped (a fake
    Ollama holds the run's LLM node until then): the events reach the sockets live, as the
    floor's do, and the subscribes' replays are not in the latencies."""
    from tests.live import daphne_process

    fake = realtime.TimedOllama(tokens=1)
    fake.go.clear()
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    env = {
        **server_env(database_url),
        "OLLAMA_BASE_URL": f"http://127.0.0.1:{fake.server_address[1]}",
    }

    class Gate:
        """The fake's gate, noting the server's CPU when it opens and when the last socket
        got its terminal frame (before the 500 closes)."""

        def set(self):
            self.opened_cpu = cpu_seconds(daphne.pid)
            fake.go.set()

        def received(self):
            self.received_cpu = cpu_seconds(daphne.pid)

    gate = Gate()
    try:
        with daphne_process(env) as (base, daphne):
            results = asyncio.run(
                realtime.fan_out(
                    base.replace("http://", "ws://"),
                    base,
                    token,
                    graph_id,
                    sockets,
                    gate=gate,
                    received=gate.received,
                )
            )
    finally:
        fake.shutdown()
    summary = realtime.fan_out_summary(results)
    # From the gate to the last socket's terminal frame: the run's live events, relayed.
    cpu = gate.received_cpu - gate.opened_cpu
    summary["cpu_us_per_frame"] = cpu * 1e6 / summary["timed"]
    return summary


def report_fanout(title: str, ours: dict, sockets: int) -> dict:
    """Measure the floor fan-out now, print both; returns the floor's summary."""
    from tests.live import free_port

    port = free_port()
    with child("--fanout-floor", str(port), str(sockets), str(ours["events"])):
        floor = realtime.fan_out_summary(asyncio.run(fanout_floor_clients(port, sockets)))
    print()
    print(f"{title}: {sockets} sockets x {ours['events']} events, ts -> receive")
    for name, fan in (("canvas", ours), ("floor", floor)):
        print(
            f"  {name}: p50 {fan['p50']:.0f} ms, p99 {fan['p99']:.0f} ms "
            f"({fan['timed']} frames timed); {fan['complete']} sockets complete, "
            f"{fan['lost']} lost, {fan['duplicates']} duplicates"
        )
    print(f"  ratio p99: {ours['p99'] / floor['p99']:.1f}×")
    if "cpu_us_per_frame" in ours:
        print(
            f"  the serving process's CPU from the gate to the last frame: "
            f"{ours['cpu_us_per_frame']:.0f} us per timed frame"
        )
    return floor


def bench_streams(database_url: str, token: str, graph_id: str) -> dict:
    import requests

    from tests.live import daphne_process

    fake = realtime.TimedOllama(tokens=STREAM_TOKENS, one_writer=True)
    fake.interval = STREAM_PACE
    fake.go.clear()
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    env = {
        **server_env(database_url),
        "OLLAMA_BASE_URL": f"http://127.0.0.1:{fake.server_address[1]}",
        # 100 runs at once: the inline pool and the node pool sized for them.
        "WORKFLOW_MAX_CONCURRENT_EXECUTIONS": str(STREAMS),
        "WORKFLOW_NODE_THREADS": str(STREAMS),
    }
    with daphne_process(env) as (base, daphne):
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        ids = []
        for i in range(STREAMS):
            response = session.post(
                f"{base}/api/graphs/{graph_id}/executions/",
                json={"inputs": {"x": f"s{i}"}},
                timeout=30,
            )
            if response.status_code != 202:
                raise RuntimeError(
                    f"run {i}: POST answered {response.status_code}: {response.text}"
                )
            ids.append(response.json()["id"])
        with child("--stream-clients", base, token, *ids) as clients:
            fake.go.set()
            result = json.loads(clients.stdout.readline())
        rss = rss_mib(daphne.pid)
    latencies = []
    missing = 0
    for key, sent in fake.sent.items():
        got = result["received"].get(f"{key[0]}:{key[1]}")
        if got is None:
            missing += 1
        else:
            latencies.append((got - sent) * 1000)
    return {
        "tokens": len(fake.sent),
        "missing": missing,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "max": max(latencies),
        "ends": sorted(set(result["ends"])),
        "rss": rss,
    }


# --- fixtures and the report ---------------------------------------------------------------


def forget_earlier_runs() -> None:
    """Delete the bench user of an earlier run (and with it every row its runs wrote)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    get_user_model().objects.filter(username="bench").delete()
    if connection.vendor == "postgresql":
        # The deleted rows stay as dead tuples until a vacuum, and this machine's PostgreSQL
        # runs with autovacuum off: without this, every run of the bench would start slower
        # than the one before.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def forget_cached_outputs() -> None:
    """Empty the node output cache, so the fan-outs' run of a fixed graph misses it in every
    pass as in the first (a hit is one ``node.cached`` event instead of two per node)."""
    from django.db import connection

    from workflows.models import NodeOutputCache

    NodeOutputCache.objects.all().delete()
    connection.close()


def fixtures() -> tuple[str, dict[str, str]]:
    user, token = realtime.bench_user()
    inp = ("input", {"name": "x"}, None)
    out = ("output", {"name": "out"}, "value")
    step = ("template", {"template": "{v}"}, "v")
    graphs = {
        f"chain{n}": realtime.create_chain(user, f"chain of {n}", [inp, *[step] * (n - 2), out])
        for n in SIZES
    }
    graphs["tiny"] = realtime.create_chain(
        user, "tiny", [inp, ("template", {"template": "<{v}>"}, "v"), out]
    )
    graphs["fanout"] = realtime.create_chain(
        user,
        "fan-out",
        [("text", {"text": "x"}, None)] + [("template", {"template": "{v}."}, "v")] * FANOUT_CHAIN,
    )
    # The live fan-out: its LLM node waits on the fake until every socket has subscribed.
    graphs["fanout-live"] = realtime.create_chain(
        user,
        "fan-out, live",
        [
            ("text", {"text": "x"}, None),
            ("llm", {"provider": "ollama", "model": "bench"}, "prompt"),
            *[("template", {"template": "{v}."}, "v")] * (FANOUT_CHAIN - 1),
        ],
    )
    graphs["llm"] = realtime.create_chain(
        user, "llm", [inp, ("llm", {"provider": "ollama", "model": "bench"}, "prompt")]
    )
    return token, graphs


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    return (
        f"median {fmt.format(statistics.median(values))} "
        f"({fmt.format(min(values))}–{fmt.format(max(values))})"
    )


def per_node(times: dict[int, list[float]]) -> list[float]:
    low, high = SIZES
    return [(b - a) / (high - low) for a, b in zip(times[low], times[high], strict=True)]


def report_runs(runs: dict[int, dict[str, list[float]]]) -> None:
    """The T(N) table; without a floor (PostgreSQL: the floor runs on SQLite only) the
    server's figures alone."""
    has_floor = all("floor" in runs[n] for n in SIZES)

    def row(label: str, ours: list[float], floor: list[float] | None, fmt: str) -> str:
        if floor is None:
            return f"| {label} | {spread(ours, fmt)} | – | – |"
        ratio = statistics.median(ours) / statistics.median(floor)
        return f"| {label} | {spread(ours, fmt)} | {spread(floor, fmt)} | {ratio:.1f}× |"

    print("| measure | AI Canvas | floor | ratio of medians |")
    print("|---|---|---|---|")
    for n in SIZES:
        floor = runs[n]["floor"] if has_floor else None
        print(row(f"T({n}), ms", runs[n]["canvas"], floor, "{:.1f}"))
    ours = per_node({n: runs[n]["canvas"] for n in SIZES})
    floor = per_node({n: runs[n]["floor"] for n in SIZES}) if has_floor else None
    print(row("per node (T(200)-T(10))/190, ms", ours, floor, "{:.3f}"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="runs,rate,fanout,fanout-live,streams")
    parser.add_argument("--seconds", type=float, default=4.0, help="per runs/s round")
    parser.add_argument("--rounds", type=int, default=3, help="runs/s rounds per target")
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--memory", type=int, default=0, help="small runs for the RSS run")
    parser.add_argument(
        "--passes",
        type=int,
        default=1,
        help="the parts again, same Daphne (fanout-live: a new one each pass)",
    )
    parser.add_argument("--floor", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--fanout-floor", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stream-clients", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        floor_serve(int(args.floor[0]), args.floor[1])
        return
    if args.fanout_floor:
        fanout_floor_serve(*args.fanout_floor)
        return
    if args.stream_clients:
        base, token, *ids = args.stream_clients
        stream_clients(base, token, ids)
        return
    parts = set(args.only.split(","))

    workdir = Path(tempfile.mkdtemp(prefix="bench-client-"))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'db.sqlite3'}"
    env = migrated(database_url)
    from django.db import connection

    forget_earlier_runs()
    token, graphs = fixtures()
    # The floor starts from a copy of the same rows (SQLite; on PostgreSQL it still uses
    # SQLite: the floor is the least work, on the embedded database).
    floor_db = workdir / "floor.sqlite3"
    if connection.vendor == "sqlite":
        with (
            sqlite3.connect(connection.settings_dict["NAME"]) as source,
            sqlite3.connect(floor_db) as target,
        ):
            source.backup(target)
    else:
        floor_db = None
    connection.close()

    from tests.live import daphne_process, free_port

    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; load average {os.getloadavg()}")
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {connection.vendor}"
        + (", REDIS_URL set" if os.environ.get("REDIS_URL") else ", in-memory channel layer")
        + f", Daphne on {served_event_loop()}'s event loop"
    )
    with ExitStack() as stack:
        base, daphne = stack.enter_context(daphne_process(env))
        targets = {"canvas": base}
        servers = {"canvas": daphne.pid}
        if floor_db is not None and parts & {"runs", "rate"}:
            port = free_port()
            servers["floor"] = stack.enter_context(child("--floor", str(port), str(floor_db))).pid
            targets["floor"] = f"http://127.0.0.1:{port}"
        rss = [("idle", rss_mib(daphne.pid))]
        if args.memory:
            memory_run(base, token, graphs["tiny"], daphne.pid, args.memory)
            return
        for pass_no in range(1, args.passes + 1):
            tag = f" (pass {pass_no})" if args.passes > 1 else ""
            if "runs" in parts:
                runs = {
                    n: asyncio.run(timed_runs(targets, token, graphs[f"chain{n}"])) for n in SIZES
                }
                print()
                print("T(N): POST until the terminal event on the client's socket, ms")
                report_runs(runs)
                rss.append(("after T(N)" + tag, rss_mib(daphne.pid)))
            if "rate" in parts:
                rates: dict[str, list[float]] = {name: [] for name in targets}
                cpu_ms: dict[str, list[float]] = {name: [] for name in targets}
                for target in targets.values():  # warm-up
                    asyncio.run(runs_for(target, token, graphs["tiny"], 1.0))
                for _ in range(args.rounds):
                    for name, target in targets.items():
                        cpu_before = cpu_seconds(servers[name])
                        done, elapsed = asyncio.run(
                            runs_for(target, token, graphs["tiny"], args.seconds)
                        )
                        cpu = cpu_seconds(servers[name]) - cpu_before
                        rates[name].append(done / elapsed)
                        cpu_ms[name].append(cpu * 1000 / done)
                print()
                print(
                    f"3-node runs/s, {CLIENTS} clients over REST + socket, "
                    f"{args.seconds:g} s rounds"
                )
                for name, values in rates.items():
                    print(
                        f"  {name}: {spread(values, '{:.0f}')} /s; the serving process's CPU "
                        f"per run {spread(cpu_ms[name])} ms"
                    )
                rss.append(("after runs/s" + tag, rss_mib(daphne.pid)))
            if "fanout" in parts:
                forget_cached_outputs()
                results = asyncio.run(
                    realtime.fan_out(
                        base.replace("http://", "ws://"),
                        base,
                        token,
                        graphs["fanout"],
                        args.sockets,
                    )
                )
                ours = realtime.fan_out_summary(results)
                rss.append(("after fan-out" + tag, rss_mib(daphne.pid)))
                report_fanout("fan-out (subscribed after the run: replays)", ours, args.sockets)
        print()
    print("Daphne RSS: " + ", ".join(f"{label} {mib:.0f} MiB" for label, mib in rss))
    if "fanout-live" in parts:
        # Each pass a new Daphne and then the floor, alternating. The floor's own p99 moves
        # several-fold from run to run here, so with passes the ratio is also given over all.
        p99s: dict[str, list[float]] = {"canvas": [], "floor": []}
        for pass_no in range(1, args.passes + 1):
            tag = f" (pass {pass_no})" if args.passes > 1 else ""
            forget_cached_outputs()
            ours = bench_fanout_live(database_url, token, graphs["fanout-live"], args.sockets)
            floor = report_fanout(
                "fan-out live (subscribed before the events)" + tag, ours, args.sockets
            )
            p99s["canvas"].append(ours["p99"])
            p99s["floor"].append(floor["p99"])
        if args.passes > 1:
            ratios = [a / b for a, b in zip(p99s["canvas"], p99s["floor"], strict=True)]
            medians = {name: statistics.median(values) for name, values in p99s.items()}
            print()
            print(
                f"fan-out live over {args.passes} passes, p99: canvas "
                f"{spread(p99s['canvas'], '{:.0f}')} ms, floor {spread(p99s['floor'], '{:.0f}')} "
                f"ms; ratio per pass {', '.join(f'{r:.1f}' for r in ratios)}×, of the "
                f"medians {medians['canvas'] / medians['floor']:.1f}×"
            )
    if "streams" in parts:
        streams = bench_streams(database_url, token, graphs["llm"])
        print()
        print(
            f"streams: {STREAMS} x {STREAM_TOKENS} tokens at {STREAM_PACE * 1000:g} ms, "
            f"{STREAMS * SOCKETS_PER_STREAM} sockets in another process: {streams['tokens']} "
            f"tokens, {streams['missing']} not received; write -> receipt p50 "
            f"{streams['p50']:.1f} ms, p99 {streams['p99']:.1f} ms, max {streams['max']:.0f} ms; "
            f"ends {streams['ends']}; Daphne RSS {streams['rss']:.0f} MiB"
        )
    shutil.rmtree(workdir, ignore_errors=True)


def memory_run(base: str, token: str, graph_id: str, pid: int, total: int) -> None:
    """``total`` small runs by CLIENTS clients; Daphne's RSS after 100 and every 1,000."""
    marks = {100, *range(1000, total + 1, 1000)}
    print(f"RSS at start {rss_mib(pid):.0f} MiB")

    async def main():
        done = 0
        async with ExitStackAsync() as stack:
            clients = [await stack.enter(Client(base, token)) for _ in range(CLIENTS)]

            async def loop(client):
                nonlocal done
                while done < total:
                    done += 1
                    mine = done
                    await client.run(graph_id, fresh())
                    if mine in marks:
                        print(f"after {mine} runs: RSS {rss_mib(pid):.0f} MiB", flush=True)

            await asyncio.gather(*(loop(c) for c in clients))

    asyncio.run(main())


if __name__ == "__main__":
    main()
