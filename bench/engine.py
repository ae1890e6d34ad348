"""Engine overhead: chains of trivial nodes, a wide fan-out, small-run throughput, and a
200-node chain started through the API.

    DATABASE_URL=sqlite:////tmp/bench/engine.sqlite3 .venv/bin/python bench/engine.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_engine .venv/bin/python bench/engine.py

Runs with DEBUG off (query logging off) on the inline executor, against its own database
(migrated here; the tables it uses are emptied first). "Per node" is the execution's
wall time of ``execution_run`` (claim to the final commit) divided by the node count: claim,
snapshot load, scheduling, the node work, node runs, events, cache rows and every commit
included. "cold" empties the output cache first; "cached" re-runs with every node cached.

With a broker (``CELERY_BROKER_URL``, or ``REDIS_URL``), the small runs also go through two
``celery -A canvas worker`` processes (``--pools threads,prefork`` compares the pools), and the
rate is printed as a share of the inline rate measured in the same run (target: ≥ 80 %).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")
os.environ["DEBUG"] = "0"
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("GRAPH_MAX_NODES", "6000")
os.environ.setdefault("GRAPH_MAX_EDGES", "12000")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
os.environ.setdefault("CRYPTOGRAPHY_KEY", "bench-only")
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/bench/engine.sqlite3")
os.environ.setdefault("WORKFLOW_BACKGROUND", "0")
os.environ.setdefault("LOG_LEVEL", "WARNING")
if os.environ["DATABASE_URL"].startswith("sqlite:////"):
    Path(os.environ["DATABASE_URL"].removeprefix("sqlite:///")).parent.mkdir(
        parents=True, exist_ok=True
    )

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from graphs.models import Edge, Graph, Node  # noqa: E402
from workflows.engine import execution_run  # noqa: E402
from workflows.models import Execution, NodeOutputCache  # noqa: E402
from workflows.services import execution_create  # noqa: E402


def build(owner, name: str, nodes: list[tuple[str, dict]], edges: list[tuple]) -> Graph:
    graph = Graph.objects.create(owner=owner, name=name)
    ids = [uuid.uuid4() for _ in nodes]
    Node.objects.bulk_create(
        [
            Node(id=ids[i], graph=graph, type=t, label=f"n{i}", config=c)
            for i, (t, c) in enumerate(nodes)
        ],
        batch_size=500,
    )
    Edge.objects.bulk_create(
        [
            Edge(graph=graph, source_id=ids[s], source_port=sp, target_id=ids[t], target_port=tp)
            for s, sp, t, tp in edges
        ],
        batch_size=500,
    )
    return graph


def chain(owner, length: int) -> Graph:
    """text → template → … → template → output: ``length`` nodes."""
    nodes = [("text", {"text": "x"})]
    edges = []
    for i in range(1, length - 1):
        # "{v}": the text keeps its size, so the cost measured is the per-node overhead.
        nodes.append(("template", {"template": "{v}"}))
        edges.append((i - 1, "text", i, "v"))
    nodes.append(("output", {"name": "out"}))
    edges.append((length - 2, "text", length - 1, "value"))
    return build(owner, f"chain-{length}", nodes, edges)


def fan_out(owner, width: int) -> Graph:
    """One text feeding ``width - 1`` templates."""
    nodes = [("text", {"text": "x"})] + [
        ("template", {"template": f"{{v}}{i}"}) for i in range(width - 1)
    ]
    edges = [(0, "text", i, "v") for i in range(1, width)]
    return build(owner, f"fan-{width}", nodes, edges)


def run_once(owner, graph: Graph, *, clear_cache: bool = True) -> float:
    """Wall time of the engine on one run, claim to final commit, in ms."""
    if clear_cache:
        NodeOutputCache.objects.all().delete()
    execution = execution_create(user=owner, graph=graph, inputs={}, dispatch=False)
    started = time.perf_counter()
    status = execution_run(execution.id)
    elapsed = (time.perf_counter() - started) * 1000
    assert status == "succeeded", (status, Execution.objects.get(pk=execution.id).error)
    return elapsed


def ms_per_node(elapsed_ms: float, nodes: int) -> float:
    return elapsed_ms / nodes


def bench_graph(owner, label: str, graph: Graph, nodes: int, repeat: int) -> None:
    cold = [ms_per_node(run_once(owner, graph), nodes) for _ in range(repeat)]
    warm = [ms_per_node(run_once(owner, graph, clear_cache=False), nodes) for _ in range(repeat)]
    total = statistics.median(cold) * nodes
    print(
        f"| {label} | {nodes} | {statistics.median(cold):.3f} | {min(cold):.3f} | "
        f"{statistics.median(warm):.3f} | {total:.0f} |"
    )


def tiny_graph(owner, name: str) -> Graph:
    """input → template → output: a cache miss for every new input."""
    return build(
        owner,
        name,
        [("input", {"name": "x"}), ("template", {"template": "<{v}>"}), ("output", {"name": "o"})],
        [(0, "value", 1, "v"), (1, "text", 2, "value")],
    )


def create_and_dispatch(owner, graph: Graph, runs: int, executor) -> tuple[float, int]:
    """Create ``runs`` executions one after the other, each dispatched at once; wait for the
    last to end. Returns (seconds from the first create to the last end, runs not succeeded)."""
    started = time.perf_counter()
    ids = []
    for i in range(runs):
        execution = execution_create(
            user=owner, graph=graph, inputs={"x": f"{i}-{uuid.uuid4()}"}, dispatch=False
        )
        ids.append(execution.id)
        executor.dispatch(execution.id)
    while Execution.objects.filter(pk__in=ids, status__in=["queued", "running"]).exists():
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    return elapsed, Execution.objects.filter(pk__in=ids).exclude(status="succeeded").count()


def bench_throughput(owner, runs: int) -> float:
    """Small runs (a cache miss each) through the inline pool; returns runs per second."""
    from workflows.executors import InlineExecutor

    executor = InlineExecutor(settings.WORKFLOW_MAX_CONCURRENT_EXECUTIONS)
    elapsed, failed = create_and_dispatch(owner, tiny_graph(owner, "tiny"), runs, executor)
    print(
        f"| {runs} three-node executions (create + run) | {runs / elapsed:.0f} /s | "
        f"{failed} not succeeded |"
    )
    return runs / elapsed


def bench_api(owner, length: int, repeat: int) -> None:
    """POST /api/graphs/{id}/executions/ in process, then queued_at → finished_at."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    graph = chain(owner, length)
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=owner)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    spans = []
    for _ in range(repeat):
        NodeOutputCache.objects.all().delete()
        response = client.post(f"/api/graphs/{graph.id}/executions/", {"inputs": {}}, format="json")
        assert response.status_code == 202, response.content
        execution = Execution.objects.get(pk=response.json()["id"])
        while execution.status in ("queued", "running"):
            time.sleep(0.005)
            execution.refresh_from_db()
        assert execution.status == "succeeded", execution.error
        spans.append((execution.finished_at - execution.queued_at).total_seconds() * 1000)
    median = statistics.median(spans)
    print(
        f"| API, {length}-node chain, queued_at → finished_at | {median:.1f} ms | "
        f"{median / length:.3f} ms/node |"
    )


def bench_daphne(owner, length: int, repeat: int) -> None:
    """The same through a live Daphne on loopback (the inline executor in its process)."""
    import requests
    from rest_framework.authtoken.models import Token

    from tests.live import daphne

    graph = chain(owner, length)
    token, _ = Token.objects.get_or_create(user=owner)
    with daphne({"WORKFLOW_BACKGROUND": "0"}) as server:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token.key}"
        base = f"{server}/api"
        spans, walls = [], []
        for _ in range(repeat):
            NodeOutputCache.objects.all().delete()
            started = time.perf_counter()
            body = session.post(
                f"{base}/graphs/{graph.id}/executions/", json={"inputs": {}}, timeout=30
            ).json()
            while body["status"] in ("queued", "running"):
                time.sleep(0.002)
                body = session.get(f"{base}/executions/{body['id']}/", timeout=30).json()
            walls.append((time.perf_counter() - started) * 1000)
            assert body["status"] == "succeeded", body["error"]
            execution = Execution.objects.get(pk=body["id"])
            spans.append((execution.finished_at - execution.queued_at).total_seconds() * 1000)
    median = statistics.median(spans)
    print(
        f"| Daphne, {length}-node chain, queued_at → finished_at | {median:.1f} ms | "
        f"{median / length:.3f} ms/node; POST to a finished GET {statistics.median(walls):.1f}"
        " ms |"
    )


def bench_celery(owner, runs: int, workers: int, pool: str, inline_rate: float) -> None:
    """Small runs through ``celery -A canvas worker`` processes on the broker, against the
    inline rate measured in the same run (target: at least 80 %)."""
    from tests.services import celery_worker
    from workflows.executors import CeleryExecutor

    graph = tiny_graph(owner, f"tiny-celery-{pool}")
    # Workers as deployed (recovery sweep on), each with the default concurrency.
    env = {"CELERY_WORKER_POOL": pool, "WORKFLOW_BACKGROUND": "auto"}
    procs = [celery_worker(env, ready=False) for _ in range(workers)]
    try:
        for proc in procs:
            proc.wait_for_output(r"canvas.celery worker \S+ ready", timeout=60)
        elapsed, failed = create_and_dispatch(owner, graph, runs, CeleryExecutor())
    finally:
        for proc in procs:
            proc.stop()
    rate = runs / elapsed
    print(
        f"| {runs} three-node executions on {workers} Celery workers (--pool {pool}) | "
        f"{rate:.0f} /s | {failed} not succeeded; {rate / inline_rate:.0%} of inline "
        f"({inline_rate:.0f} /s), target ≥ 80 % |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="Skip the 5,000-node chain.")
    parser.add_argument("--runs", type=int, default=500, help="Small runs per executor.")
    parser.add_argument(
        "--executors-only",
        action="store_true",
        help="Only the small-run throughput: inline, then Celery (needs a broker).",
    )
    parser.add_argument(
        "--pools",
        default="threads",
        help="Celery pools to measure (comma-separated: threads,prefork) when a broker is set.",
    )
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    Execution.objects.all().delete()
    Graph.objects.all().delete()
    owner, _ = get_user_model().objects.get_or_create(username="bench")
    vendor = connection.vendor
    print(f"Engine benchmark on {vendor} ({os.cpu_count()} cores), DEBUG off, inline executor")
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {os.getloadavg()[0]:.1f} at start")
    print()
    if not args.executors_only:
        print(
            "| graph | nodes | ms/node cold (median) | ms/node cold (best) | ms/node cached "
            "| run ms |"
        )
        print("|---|---|---|---|---|---|")
        sizes = [10, 500] if args.quick else [10, 500, 5000]
        for size in sizes:
            bench_graph(owner, f"chain of {size}", chain(owner, size), size, args.repeat)
        bench_graph(owner, "fan-out of 500", fan_out(owner, 500), 500, args.repeat)
        print()
    print("| measure | result | notes |")
    print("|---|---|---|")
    inline_rate = bench_throughput(owner, args.runs)
    if not args.executors_only:
        bench_api(owner, 200, args.repeat + 2)
        bench_daphne(owner, 200, args.repeat + 2)
    if settings.CELERY_BROKER_URL:
        for pool in args.pools.split(","):
            bench_celery(owner, args.runs, workers=2, pool=pool, inline_rate=inline_rate)


if __name__ == "__main__":
    main()
