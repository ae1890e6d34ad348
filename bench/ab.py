"""The engine's cost against an earlier commit, interleaved in one run (issue 10's "no slowdown").

    .venv/bin/python bench/ab.py                      # against 5915bfd, the engine before the split
    .venv/bin/python bench/ab.py --base <rev> --pairs 8 --rounds 60

Checks ``--base`` out into a temporary git worktree (sharing this checkout's ``.venv``), then
runs the same workload in both checkouts, alternating, ``--pairs`` times: each a fresh process
on its own SQLite file (DEBUG off, the inline engine called in the foreground, no background
threads), ``--rounds`` rounds after one warm-up round. A round is a 50-node chain run cold and
again fully cached, and five ``input → template → output`` runs with fresh inputs: create
(validation, snapshot, insert) and ``execution_run`` (claim to final commit), every node and
event written.

Printed per checkout: the median and range of the process's CPU time (all threads) and wall
time over the rounds, and the ratios of the medians (this checkout / base). CPU time is the
figure to read on a shared machine: wall time moves 2-3x with the machine's load, CPU time far
less (both move with the CPU's clock).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIT = shutil.which("git") or "git"
DEFAULT_BASE = "5915bfd"  # the last commit with the one-class engine (workflows/engine.py)


def work(database: str, rounds: int) -> None:
    """The workload, in the checkout that is the current directory. Prints 'cpu wall'."""
    sys.path.insert(0, os.getcwd())
    os.environ.update(
        DJANGO_SETTINGS_MODULE="canvas.settings",
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        SECRET_KEY="bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",  # noqa: S106
        ALLOWED_HOSTS="127.0.0.1",
        CRYPTOGRAPHY_KEY="bench-only",
        WORKFLOW_BACKGROUND="0",
        LOG_LEVEL="WARNING",
        DATABASE_URL=f"sqlite:///{database}",
    )
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from graphs.models import Edge, Graph, Node
    from workflows.engine import execution_run
    from workflows.models import NodeOutputCache
    from workflows.services import execution_create

    call_command("migrate", verbosity=0)
    owner, _ = get_user_model().objects.get_or_create(username="ab")

    def build(nodes, edges):
        graph = Graph.objects.create(owner=owner, name=f"ab-{uuid.uuid4()}")
        ids = [uuid.uuid4() for _ in nodes]
        Node.objects.bulk_create(
            Node(id=ids[i], graph=graph, type=t, label=f"n{i}", config=c)
            for i, (t, c) in enumerate(nodes)
        )
        Edge.objects.bulk_create(
            Edge(graph=graph, source_id=ids[s], source_port=sp, target_id=ids[t], target_port=tp)
            for s, sp, t, tp in edges
        )
        return graph

    n = 50
    chain = build(
        [("text", {"text": "x"})]
        + [("template", {"template": "{v}"})] * (n - 2)
        + [("output", {"name": "out"})],
        [(i - 1, "text", i, "v") for i in range(1, n - 1)] + [(n - 2, "text", n - 1, "value")],
    )
    tiny = build(
        [("input", {"name": "x"}), ("template", {"template": "<{v}>"}), ("output", {"name": "o"})],
        [(0, "value", 1, "v"), (1, "text", 2, "value")],
    )

    def run(graph, inputs):
        execution = execution_create(user=owner, graph=graph, inputs=inputs, dispatch=False)
        status = execution_run(execution.id)
        assert status == "succeeded", status

    def one_round(i: int) -> None:
        NodeOutputCache.objects.all().delete()
        run(chain, {})  # cold
        run(chain, {})  # every node cached
        for j in range(5):
            run(tiny, {"x": f"{i}-{j}-{uuid.uuid4()}"})

    one_round(-1)  # warm-up: imports, caches, the first connection
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(rounds):
        one_round(i)
    print(f"{time.process_time() - cpu:.4f} {time.perf_counter() - wall:.4f}")


def measure(checkout: Path, database: Path, rounds: int) -> tuple[float, float]:
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(Path(__file__).resolve()), "--work", str(database), str(rounds)],
        cwd=checkout,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[-2]), float(out[-1])


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}–{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default=DEFAULT_BASE)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--work", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:
        work(args.work[0], int(args.work[1]))
        return

    head = subprocess.run(  # noqa: S603 - git, fixed arguments
        [GIT, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        base_dir = Path(tmp) / "base"
        subprocess.run(  # noqa: S603 - git, fixed arguments
            [GIT, "worktree", "add", "--quiet", "--detach", str(base_dir), args.base],
            cwd=ROOT,
            check=True,
        )
        try:
            (base_dir / ".venv").symlink_to(ROOT / ".venv")
            checkouts = {f"base {args.base}": base_dir, f"this {head or 'checkout'}": ROOT}
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
            print(
                f"bench/ab.py: {args.pairs} pairs × {args.rounds} rounds, "
                f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {os.getloadavg()[0]:.1f}"
            )
            for pair in range(args.pairs):
                for name, checkout in checkouts.items():
                    database = Path(tmp) / f"{name.split()[0]}-{pair}.sqlite3"
                    results[name].append(measure(checkout, database, args.rounds))
            print(f"load average at the end {os.getloadavg()[0]:.1f}")
            print("| checkout | CPU s (median, range) | wall s (median, range) |")
            print("|---|---|---|")
            for name, values in results.items():
                cpus, walls = [v[0] for v in values], [v[1] for v in values]
                print(f"| {name} | {spread(cpus)} | {spread(walls)} |")
            base, this = results.values()

            def ratio(index):
                return statistics.median(v[index] for v in this) / statistics.median(
                    v[index] for v in base
                )

            print(f"ratio this/base: CPU {ratio(0):.2f}, wall {ratio(1):.2f} (below 1: faster)")
        finally:
            subprocess.run(  # noqa: S603 - git, fixed arguments
                [GIT, "worktree", "remove", "--force", str(base_dir)], cwd=ROOT, check=False
            )


if __name__ == "__main__":
    main()
