"""Load with faults (run by hand; figures go to docs/reliability.md).

2 Daphne + 2 Celery workers on PostgreSQL + a Redis of its own; ``--runs`` executions (input →
LLM → output), each streaming ``--tokens`` tokens from a fake Ollama in this process; two
sockets per run (one subscribed from the start, one late, with ``after=0``: replay then live),
spread over both Daphnes. Then the same again while one worker is SIGKILLed and restarted and
one Daphne is SIGKILLed and restarted mid-load (its sockets reconnect to the other Daphne and
resubscribe with ``after`` = the last seq they had; starts retry with their Idempotency-Key).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_load .venv/bin/python bench/load.py
        [--runs 100] [--tokens 200] [--pace 0.01] [--phase both|calm|kills]

Reports per phase: runs terminal, events lost / duplicated / out of order on the sockets (each
must be 0), throughput, p50/p99 event latency (its ``ts`` → the socket has it) and token
latency (the fake wrote it → the socket has it), CPU seconds and peak RSS per process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import sys
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canvas.core.events import EXECUTION_FINAL_EVENTS  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# A socket silent this long is taken as lost (the watcher reconnects), seconds.
SILENCE = 60
# The late socket of a run subscribes this many seconds after the start (with after=0).


def LATE() -> float:  # noqa: N802 - reads as a constant at the call site
    return random.uniform(0.5, 3.0)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class TimedOllama(ThreadingHTTPServer):
    """/api/chat streams ``tokens`` chunks "<i> " at ``pace``, recording when each was written,
    keyed by the prompt (each run's input names the run)."""

    daemon_threads = True

    def __init__(self, tokens: int, pace: float):
        self.tokens, self.pace = tokens, pace
        self.sent: dict[tuple[str, int], float] = {}
        super().__init__(("127.0.0.1", 0), self.Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            marker = body["messages"][-1]["content"]
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for index in range(self.server.tokens):
                    self._line({"message": {"role": "assistant", "content": f"{index} "}})
                    # The latest write: a retried call's tokens count from their new write.
                    self.server.sent[(marker, index)] = time.perf_counter()
                    time.sleep(self.server.pace)
                self._line(
                    {
                        "message": {"role": "assistant", "content": ""},
                        "done": True,
                        "done_reason": "stop",
                        "eval_count": self.server.tokens,
                        "prompt_eval_count": 1,
                    }
                )
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                pass  # the engine closed the stream (a killed worker)

        def _line(self, payload: dict):
            data = json.dumps({"model": "bench", "done": False, **payload}).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()


# --- processes -------------------------------------------------------------------------------


class Cpu:
    """CPU seconds and peak RSS of a pid, sampled while it lives."""

    def __init__(self, name: str, pid: int):
        self.name, self.pid = name, pid
        self.cpu = 0.0
        self.rss = 0.0

    def sample(self) -> None:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            self.cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.rss = max(self.rss, int(line.split()[1]) / 1024)
        except (OSError, IndexError):
            pass


class Stack:
    """Two Daphnes and two workers sharing ``env``; any of them can be killed and restarted."""

    def __init__(self, env: dict[str, str]):
        from tests.live import free_port

        self.env = env
        self.ports = [free_port(), free_port()]
        self.daphnes: list = [None, None]
        self.workers: list = [None, None]
        self.meters: list[Cpu] = []
        try:
            for i in range(2):
                self.start_daphne(i)
                self.start_worker(i, ready=False)
            for worker in self.workers:
                worker.wait_for_output(r"canvas.celery worker \S+ ready", timeout=90)
        except BaseException:
            self.stop()
            raise

    def start_daphne(self, i: int) -> None:
        from tests.live import wait_for_port
        from tests.services import Process

        args = [
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.ports[i]),
            "canvas.asgi:application",
        ]
        self.daphnes[i] = Process([sys.executable, *args], self.env)
        wait_for_port(self.ports[i], process=self.daphnes[i].popen)
        self.meters.append(Cpu(f"daphne{i}", self.daphnes[i].pid))

    def start_worker(self, i: int, ready: bool = True) -> None:
        from tests.services import celery_worker

        self.workers[i] = celery_worker({**self.env, "LOG_LEVEL": "INFO"}, ready=ready)
        self.meters.append(Cpu(f"worker{i}", self.workers[i].pid))

    def base(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i % 2]}"

    def sample(self) -> None:
        for meter in self.meters:
            meter.sample()

    def stop(self) -> None:
        for proc in [*self.daphnes, *self.workers]:
            if proc is not None:
                proc.stop()


# --- clients ---------------------------------------------------------------------------------


def start_run(stack: Stack, i: int, token: str, graph_id: str, marker: str) -> str:
    """POST the start, retrying (same Idempotency-Key) on the other Daphne while one is down."""
    import requests

    key = str(uuid.uuid4())
    for attempt in range(60):
        try:
            response = requests.post(
                f"{stack.base(i + attempt)}/api/graphs/{graph_id}/executions/",
                json={"inputs": {"marker": marker}},
                headers={"Authorization": f"Token {token}", "Idempotency-Key": key},
                timeout=30,
            )
            if response.status_code == 202:
                return response.json()["id"]
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("could not start a run")


class Watch:
    """One socket's view of one run: seqs seen, latencies."""

    def __init__(self):
        self.seqs: list[int] = []
        self.event_ms: list[float] = []
        self.token_ms: list[float] = []
        self.reconnects = 0
        self.done = False


async def watch(stack, i, token, execution_id, marker, fake, delay, result: Watch, deadline):
    import websockets

    await asyncio.sleep(delay)
    topic = f"execution:{execution_id}"
    attempt = 0
    loop = asyncio.get_running_loop()
    while not result.done and time.monotonic() < deadline:
        url = stack.base(i + attempt).replace("http", "ws") + f"/ws/?token={token}"
        attempt += 1
        try:
            async with websockets.connect(url, max_queue=None, open_timeout=10) as ws:
                after = result.seqs[-1] if result.seqs else 0
                await ws.send(json.dumps({"type": "subscribe", "topic": topic, "after": after}))
                replayed_up_to = None
                # Silence for SILENCE seconds counts as a lost socket. One timeout moved on at
                # each frame, not ``wait_for`` on each ``recv``: in Python 3.11 that wraps every
                # receive in a task, ~12 us of this process's CPU a frame, in every latency.
                async with asyncio.timeout(SILENCE) as silence:
                    while time.monotonic() < deadline:
                        frame = json.loads(await ws.recv())
                        now = time.perf_counter()
                        silence.reschedule(loop.time() + SILENCE)
                        if frame.get("type") == "subscribed":
                            replayed_up_to = (frame.get("snapshot") or {}).get("last_seq", 0)
                        if frame.get("type") != "event":
                            continue
                        if frame["event"] == "node.token":
                            data = frame["data"]
                            for word in data["text"].split():
                                sent = fake.sent.get((marker, int(word)))
                                if sent is not None:
                                    result.token_ms.append((now - sent) * 1000)
                            continue
                        result.seqs.append(frame["seq"])
                        if replayed_up_to is not None and frame["seq"] > replayed_up_to:
                            # Live events only: a replayed one's latency is its age.
                            ts = datetime.fromisoformat(frame["ts"]).timestamp()
                            result.event_ms.append((time.time() - ts) * 1000)
                        if frame["event"] in EXECUTION_FINAL_EVENTS:
                            result.done = True
                            return
        except (TimeoutError, OSError, websockets.WebSocketException):
            result.reconnects += 1
            await asyncio.sleep(0.5)


async def phase(stack, token, graph_id, fake, runs: int, kills: bool) -> dict:
    results: list[Watch] = []
    tasks = []
    deadline = time.monotonic() + 600
    started = time.perf_counter()

    async def one(i: int):
        marker = f"run-{uuid.uuid4()}"
        execution_id = await asyncio.to_thread(start_run, stack, i, token, graph_id, marker)
        early, late = Watch(), Watch()
        results.extend([early, late])
        await asyncio.gather(
            watch(stack, i, token, execution_id, marker, fake, 0, early, deadline),
            watch(
                stack,
                i + 1,
                token,
                execution_id,
                marker,
                fake,
                random.uniform(0.5, 3),
                late,
                deadline,
            ),
        )
        return execution_id

    async def chaos():
        await asyncio.sleep(3)
        print("  SIGKILL worker0 and daphne1", flush=True)
        stack.workers[0].popen.send_signal(signal.SIGKILL)
        stack.daphnes[1].popen.send_signal(signal.SIGKILL)
        await asyncio.sleep(1)
        await asyncio.to_thread(stack.start_daphne, 1)
        await asyncio.to_thread(stack.start_worker, 0)
        print("  restarted both", flush=True)

    async def sampler():
        while time.monotonic() < deadline:
            stack.sample()
            await asyncio.sleep(0.5)

    sampling = asyncio.create_task(sampler())
    if kills:
        tasks.append(asyncio.create_task(chaos()))
    ids = await asyncio.gather(*(one(i) for i in range(runs)))
    elapsed = time.perf_counter() - started
    for task in tasks:
        await task
    sampling.cancel()
    return {"ids": ids, "watches": results, "elapsed": elapsed}


def report(label: str, outcome: dict, stack: Stack) -> None:
    from workflows.models import Execution

    stack.sample()
    statuses: dict[str, int] = {}
    for execution in Execution.objects.filter(pk__in=outcome["ids"]):
        statuses[execution.status] = statuses.get(execution.status, 0) + 1
    lost = duplicated = disordered = 0
    events, tokens, reconnects = [], [], 0
    for w in outcome["watches"]:
        seqs = w.seqs
        duplicated += len(seqs) - len(set(seqs))
        disordered += sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b < a)
        if seqs:
            lost += len(set(range(1, max(seqs) + 1)) - set(seqs))
        lost += 0 if w.done else 1
        events += w.event_ms
        tokens += w.token_ms
        reconnects += w.reconnects
    runs = len(outcome["ids"])
    print(f"\n### {label}\n")
    print("| measure | result |\n|---|---|")
    print(f"| runs terminal | {sum(statuses.values())} / {runs} {statuses} |")
    print(f"| sockets | {len(outcome['watches'])} ({reconnects} reconnects) |")
    print(f"| events lost / duplicated / out of order | {lost} / {duplicated} / {disordered} |")
    print(f"| throughput | {runs / outcome['elapsed']:.1f} runs/s ({outcome['elapsed']:.1f} s) |")
    print(f"| live event latency p50 / p99 | {pct(events, 50):.1f} / {pct(events, 99):.1f} ms |")
    print(f"| token latency p50 / p99 | {pct(tokens, 50):.1f} / {pct(tokens, 99):.1f} ms |")
    print("\n| process | CPU s | peak RSS MiB |\n|---|---|---|")
    for meter in stack.meters:
        print(f"| {meter.name} (pid {meter.pid}) | {meter.cpu:.1f} | {meter.rss:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--pace", type=float, default=0.01, help="seconds between tokens")
    parser.add_argument("--phase", choices=["both", "calm", "kills"], default="both")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        sys.exit("bench/load.py: set DATABASE_URL=postgres://... (a database it may empty)")

    from tests.services import RedisServer

    redis = RedisServer().start()
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = redis.url
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from graphs.services import graph_create
    from workflows.models import Execution

    call_command("migrate", verbosity=0)
    Execution.objects.all().delete()
    get_user_model().objects.filter(username="load").delete()
    user = get_user_model().objects.create_user(username="load", password="load-pass-123")  # noqa: S106
    token = Token.objects.create(user=user).key
    ids = [str(uuid.uuid4()) for _ in range(3)]
    graph = graph_create(
        owner=user,
        name="load",
        nodes=[
            {"id": ids[0], "type": "input", "config": {"name": "marker"}},
            {"id": ids[1], "type": "llm", "config": {"provider": "ollama", "model": "bench"}},
            {"id": ids[2], "type": "output", "config": {"name": "text"}},
        ],
        edges=[
            {"source": ids[0], "source_port": "value", "target": ids[1], "target_port": "prompt"},
            {"source": ids[1], "source_port": "text", "target": ids[2], "target_port": "value"},
        ],
    ).graph
    fake = TimedOllama(args.tokens, args.pace)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url,
        "CELERY_BROKER_URL": redis.url,
        "WORKFLOW_EXECUTOR": "celery",
        "OLLAMA_BASE_URL": fake.url,
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }
    print(
        f"bench/load.py on {platform.node()} ({os.cpu_count()} cores), "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {os.getloadavg()[0]:.1f} at start; "
        f"{args.runs} runs × {args.tokens} tokens every {args.pace * 1000:.0f} ms, 2 sockets each"
    )
    stack = Stack(env)
    try:
        for label, kills in (("calm", False), ("kills", True)):
            if args.phase not in ("both", label):
                continue
            outcome = asyncio.run(phase(stack, token, str(graph.id), fake, args.runs, kills))
            what = "one worker and one Daphne SIGKILLed and restarted" if kills else "no faults"
            report(f"{label}: {what}", outcome, stack)
    finally:
        stack.stop()
        fake.shutdown()
        redis.stop()


if __name__ == "__main__":
    main()
