"""The serving process's CPU per relayed frame: token frames through the real Daphne.

    .venv/bin/python bench/relay_cpu.py [--runs 100] [--per-run 2] [--pieces 50] [--pace 0.02]

Daphne serves ``canvas.asgi`` (``make run``'s settings, DEBUG off, SQLite, the in-memory layer
unless REDIS_URL is set) wrapped by ``bench.relay_app``, whose one extra HTTP route starts a
thread in the server that publishes ``node.token`` pieces through ``publish_on_commit``, as a
node's ``TokenStream`` does: ``--pieces`` pieces per run, one round over every run each
``--pace`` seconds (the streams part of ``bench/client.py``: 100 runs, 20 ms coalescing, 50
pieces a run). No provider is read and no node thread runs, so the serving process's CPU
over the window is the relay's (group messages, consumers, ``send``, Daphne and autobahn
framing, Twisted's writes) plus the publishing thread's (encoding once per piece).

``--per-run`` sockets (in a child process) subscribe to each of ``--runs`` running executions
(held at their LLM node by a fake Ollama). Reports the serving process's CPU and its loop
thread's, in microseconds per frame received, and publish -> receipt latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import realtime  # noqa: E402
from bench.realtime import pct  # noqa: E402


def thread_cpu(pid: int, tid: int) -> float:
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clients(base: str, token: str, per_run: int, ids: list[str]) -> None:
    """Subscribe, print "ready", then print the receipts as JSON once every socket had its
    "done" piece."""

    latencies: list[float] = []
    frames = 0
    ready = 0
    all_ready = asyncio.Event()
    total = len(ids) * per_run

    async def follow(ws, execution):
        nonlocal frames, ready
        await ws.send(json.dumps({"type": "subscribe", "topic": f"execution:{execution}"}))
        # One deadline for the socket's run (realtime.collect_events says why).
        async with asyncio.timeout(realtime.COLLECT_TIMEOUT):
            while True:
                frame = json.loads(await ws.recv())
                now = time.perf_counter()
                if frame.get("type") == "subscribed":
                    ready += 1
                    if ready == total:
                        all_ready.set()
                elif frame.get("event") == "node.token":
                    frames += 1
                    text = frame["data"]["text"]
                    if text == "done":
                        return
                    latencies.append((now - float(text)) * 1000)

    async def main():
        sockets = await realtime.connect_sockets(base, token, ids, per_run)
        tasks = [asyncio.ensure_future(follow(ws, e)) for ws, e in sockets]
        await all_ready.wait()
        print("ready", flush=True)
        await asyncio.gather(*tasks)
        print(json.dumps({"frames": frames, "latencies": latencies}), flush=True)
        for ws, _ in sockets:
            await ws.close()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--per-run", type=int, default=2)
    parser.add_argument("--pieces", type=int, default=50)
    parser.add_argument("--pace", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients:
        base, token, *ids = args.clients
        clients(base, token, args.per_run, ids)
        return

    import requests

    from bench.client import migrated
    from tests.live import free_port, wait_for_port

    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'db.sqlite3'}"
    env = migrated(database_url)
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="bench").delete()
    user, token = realtime.bench_user()
    graph = realtime.create_chain(
        user,
        "llm",
        [
            ("input", {"name": "x"}, None),
            ("llm", {"provider": "ollama", "model": "bench"}, "prompt"),
        ],
    )
    from graphs.models import Node

    llm_node = str(Node.objects.get(graph_id=graph, type="llm").id)

    fake = realtime.TimedOllama(tokens=1)
    fake.go.clear()
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    env = {
        **env,
        "OLLAMA_BASE_URL": f"http://127.0.0.1:{fake.server_address[1]}",
        "WORKFLOW_MAX_CONCURRENT_EXECUTIONS": str(args.runs),
        "WORKFLOW_NODE_THREADS": str(args.runs),
    }
    port = free_port()
    daphne = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "canvas.daphne_server", "-b", "127.0.0.1", "-p", str(port)]
        + ["bench.relay_app:application"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average {os.getloadavg()}")
    print(
        f"{args.runs} runs x {args.per_run} sockets, {args.pieces} pieces a run every "
        f"{args.pace * 1000:g} ms; "
        + ("REDIS_URL set" if os.environ.get("REDIS_URL") else "in-memory layer")
    )
    try:
        wait_for_port(port, process=daphne)
        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        ids = [
            session.post(
                f"{base}/api/graphs/{graph}/executions/",
                json={"inputs": {"x": f"r{i}"}},
                timeout=30,
            ).json()["id"]
            for i in range(args.runs)
        ]
        time.sleep(1.0)  # the runs reach their LLM node (held by the fake)
        for rep in range(args.repeat):
            child = subprocess.Popen(  # noqa: S603
                [sys.executable, __file__, "--per-run", str(args.per_run), "--clients", base, token]
                + ids,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout.readline().strip() == "ready"
            cpu0, loop0 = realtime_cpu(daphne.pid), thread_cpu(daphne.pid, daphne.pid)
            print(f"  emitting to {daphne.pid}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            session.post(
                f"{base}/__bench/emit",
                json={"ids": ids, "node": llm_node, "pieces": args.pieces, "pace": args.pace},
                timeout=30,
            ).raise_for_status()
            result = json.loads(child.stdout.readline())
            wall = time.perf_counter() - t0
            cpu = realtime_cpu(daphne.pid) - cpu0
            loop = thread_cpu(daphne.pid, daphne.pid) - loop0
            child.wait()
            frames = result["frames"]
            lat = result["latencies"]
            print(
                f"  [{rep + 1}] {frames} frames in {wall:.2f} s: serving process CPU "
                f"{cpu:.2f} s = {cpu / frames * 1e6:.0f} us/frame (loop thread "
                f"{loop / frames * 1e6:.0f} us/frame); publish -> receipt p50 "
                f"{pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms"
            )
    finally:
        fake.go.set()
        daphne.terminate()
        daphne.wait(timeout=10)
        fake.shutdown()


def realtime_cpu(pid: int) -> float:
    from bench.client import cpu_seconds

    return cpu_seconds(pid)


if __name__ == "__main__":
    main()
