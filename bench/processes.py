"""Runs/s with several Daphne processes serving one address: the scale-out docs/deploy.md
describes, measured by ``bench/client.py``'s runs/s method.

    REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/processes.py 1 2 1 2

Each argument is a number of serving processes, measured in turn (interleave them: this
machine's speed moves). The processes share one listening socket (bound here and passed to
each with Daphne's ``--fd``: the kernel hands each connection to one of them), the Redis
channel layer (a run's events reach sockets served by another process) and one SQLite
database; each runs the runs it accepts on its inline executor. 8 clients, each with its own
keep-alive HTTP connection and socket, run 3-node graphs back to back for three 4-s rounds;
prints runs/s per round and the serving processes' CPU per run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import client  # noqa: E402

ROUNDS, SECONDS = 3, 4.0


@contextmanager
def serving(processes: int, env: dict[str, str]):
    """``processes`` Daphnes on one listening socket; yields its base URL and their pids."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    servers = [
        subprocess.Popen(  # noqa: S603 - our own interpreter
            [
                sys.executable,
                "-m",
                "canvas.daphne_server",
                "--fd",
                str(listener.fileno()),
                "canvas.asgi:application",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            pass_fds=[listener.fileno()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    try:
        time.sleep(4)  # they accept from the shared socket once they have started
        for server in servers:
            if server.poll() is not None:
                raise RuntimeError(f"a Daphne exited with {server.returncode}")
        yield f"http://127.0.0.1:{port}", [server.pid for server in servers]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(10)
        listener.close()


def main() -> None:
    counts = [int(arg) for arg in sys.argv[1:]] or [1, 2, 1, 2]
    if not os.environ.get("REDIS_URL"):
        sys.exit("bench/processes.py needs REDIS_URL: processes share events over Redis")
    workdir = Path(tempfile.mkdtemp(prefix="bench-processes-"))
    env = client.migrated(f"sqlite:///{workdir / 'db.sqlite3'}")
    from django.db import connection

    token, graphs = client.fixtures()
    connection.close()
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} cores")
    for count in counts:
        with serving(count, env) as (base, pids):
            asyncio.run(client.runs_for(base, token, graphs["tiny"], 1.0))  # warm-up
            cpu_before = sum(client.cpu_seconds(pid) for pid in pids)
            rates, done_total = [], 0
            for _ in range(ROUNDS):
                done, elapsed = asyncio.run(client.runs_for(base, token, graphs["tiny"], SECONDS))
                rates.append(done / elapsed)
                done_total += done
            cpu = sum(client.cpu_seconds(pid) for pid in pids) - cpu_before
            print(
                f"{count} serving process(es): {client.spread(rates, '{:.0f}')} runs/s; "
                f"their CPU per run {cpu * 1000 / done_total:.1f} ms; "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
