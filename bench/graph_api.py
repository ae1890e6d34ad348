"""Benchmark: GET and PUT of a 1,000-node / 2,000-edge graph through a running Daphne.

    .venv/bin/python bench/graph_api.py [--database-url URL] [--rounds 15]

Starts Daphne on loopback (production settings, DEBUG off) against a fresh SQLite file in a
temporary directory, or against --database-url (a PostgreSQL database it may migrate and
write to). Times GET and PUT over HTTP with a token, reports medians, and counts the queries of
one GET and one PUT in-process with the same code (Django's test client, CaptureQueriesContext).
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from tests.live import daphne  # noqa: E402 - needs the path above


def moved(document: dict, step: int) -> dict:
    """A canvas save: every node moved (so every row changes), nothing else."""
    nodes = [
        {**node, "position": {"x": node["position"]["x"], "y": float(step)}}
        for node in document["nodes"]
    ]
    return {**document, "nodes": nodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a new SQLite file in a temp dir")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    env = {
        "DEBUG": "0",
        "SECRET_KEY": "bench-secret-key-" + "x" * 40,
        "CRYPTOGRAPHY_KEY": "bench-cryptography-key",
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'db.sqlite3'}",
        "REDIS_URL": "",
        "STATIC_ROOT": str(workdir / "static"),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "canvas.settings"
    subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=BASE_DIR,
        check=True,
    )

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    from tests.graphs.factories import large_document

    user, _ = get_user_model().objects.get_or_create(username="bench")
    token, _ = Token.objects.get_or_create(user=user)
    headers = {"Authorization": f"Token {token.key}"}

    with daphne(env) as server:
        base = f"{server}/api/graphs/"
        session = requests.Session()
        session.headers.update(headers)
        created = session.post(base, json=large_document(), timeout=120)
        created.raise_for_status()
        url = f"{base}{created.json()['id']}/"
        document = session.get(url, timeout=60).json()
        assert len(document["nodes"]) == 1000
        assert len(document["edges"]) == 2000
        payload_bytes = len(session.get(url, timeout=60).content)

        get_times, put_times = [], []
        session.get(url, timeout=60)  # warm-up
        for step in range(args.rounds):
            start = time.perf_counter()
            response = session.get(url, timeout=60)
            get_times.append(time.perf_counter() - start)
            response.raise_for_status()
            body = moved(document, step + 1)
            start = time.perf_counter()
            response = session.put(url, json=body, timeout=120)
            put_times.append(time.perf_counter() - start)
            response.raise_for_status()

    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    path = f"/api/graphs/{document['id']}/"
    with CaptureQueriesContext(connection) as get_queries:
        assert client.get(path).status_code == 200
    with CaptureQueriesContext(connection) as put_queries:
        response = client.put(path, moved(document, 10_000), content_type="application/json")
        assert response.status_code == 200

    if os.environ.get("BENCH_SHOW_QUERIES"):
        for query in [*get_queries.captured_queries, *put_queries.captured_queries]:
            print(query["sql"][:100])

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms"

    vendor = connection.vendor
    machine = platform.processor() or platform.machine()
    print(
        f"Graph API, {vendor}, {datetime.now(UTC):%Y-%m-%d}, {machine}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; {args.rounds} rounds, "
        f"document {payload_bytes / 1024:.0f} KiB"
    )
    print()
    print("| request | median | queries |")
    print("|---|---|---|")
    print(f"| GET 1,000 nodes / 2,000 edges | {ms(get_times)} | {len(get_queries)} |")
    print(f"| PUT (every node moved) | {ms(put_times)} | {len(put_queries)} |")


if __name__ == "__main__":
    main()
