"""Where one run's time goes, from the client's clock and the run's stamps.

One client runs a chain (bench/client.py's method: POST, ``subscribe`` with ``after: 0``, wait
for the terminal event) against a live Daphne, then reads each run's ``queued_at``,
``started_at`` and ``finished_at`` from the database. Client and server share the machine's
clock, so the run splits into: POST → ``queued_at``, ``queued_at`` → the 202 on the client,
``queued_at`` → ``started_at``, ``started_at`` → ``finished_at`` and ``finished_at`` → the
terminal event on the client's socket; and, relative to ``finished_at``, when the client got
its ``subscribed`` reply, its first event and each kind of event. Medians.

    .venv/bin/python bench/timeline.py                      # SQLite, chain of 10
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h15_bench \\
        .venv/bin/python bench/timeline.py --graph chain200 --runs 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import client as bench_client  # noqa: E402
from canvas.core.events import EXECUTION_FINAL_EVENTS  # noqa: E402


async def timed(base: str, token: str, graph_id: str, warmup: int, runs: int) -> list[tuple]:
    """(execution id, POST sent, 202 received, terminal event received, first receipt of
    each frame kind) per timed run, wall-clock seconds."""
    rows = []
    async with bench_client.Client(base, token) as client:
        for index in range(warmup + runs):
            sent = time.time()
            async with client.http.post(
                f"{base}/api/graphs/{graph_id}/executions/",
                json={"inputs": bench_client.fresh()},
            ) as response:
                body = await response.json()
            accepted = time.time()
            topic = f"execution:{body['id']}"
            await client.ws.send(json.dumps({"type": "subscribe", "topic": topic, "after": 0}))
            marks: dict[str, float] = {}
            async with asyncio.timeout(60):  # one deadline (realtime.collect_events says why)
                while True:
                    frame = json.loads(await client.ws.recv())
                    now = time.time()
                    if frame.get("topic") != topic:
                        continue  # the previous run's "unsubscribed"
                    kind = frame["event"] if frame.get("type") == "event" else frame.get("type")
                    marks.setdefault(kind, now)
                    if frame.get("type") == "event":
                        marks.setdefault("first event", now)
                        if frame["event"] in EXECUTION_FINAL_EVENTS:
                            break
            await client.ws.send(json.dumps({"type": "unsubscribe", "topic": topic}))
            if index >= warmup:
                rows.append((body["id"], sent, accepted, now, marks))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--graph", default="chain10", help="chain10, chain200 or tiny")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'db.sqlite3'}"
    env = bench_client.migrated(database_url)
    from django.db import connection

    bench_client.forget_earlier_runs()
    token, graphs = bench_client.fixtures()
    connection.close()

    from tests.live import daphne_process
    from workflows.models import Execution

    with daphne_process(env) as (base, _process):
        rows = asyncio.run(timed(base, token, graphs[args.graph], args.warmup, args.runs))

    parts: dict[str, list[float]] = {}
    after_finish: dict[str, list[float]] = {}
    for execution_id, sent, accepted, terminal, marks in rows:
        run = Execution.objects.get(pk=execution_id)
        queued, started, finished = (
            run.queued_at.timestamp(),
            run.started_at.timestamp(),
            run.finished_at.timestamp(),
        )
        for name, value in (
            ("POST -> queued_at", queued - sent),
            ("queued_at -> 202", accepted - queued),
            ("queued_at -> started_at", started - queued),
            ("started_at -> finished_at", finished - started),
            ("finished_at -> terminal event", terminal - finished),
            ("total", terminal - sent),
        ):
            parts.setdefault(name, []).append(value)
        for kind, at in marks.items():
            after_finish.setdefault(kind, []).append(at - finished)

    print(
        f"{args.graph}, {connection.vendor}, {len(rows)} runs after {args.warmup}; "
        f"load {os.getloadavg()}"
    )
    for name, values in parts.items():
        print(f"  {name}: {statistics.median(values) * 1000:.2f} ms")
    print("received, relative to finished_at (median ms):")
    for kind, values in after_finish.items():
        print(f"  {kind}: {statistics.median(values) * 1000:+.2f}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
