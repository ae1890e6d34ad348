"""Probe the served edges from outside, as docs/security.md reports them.

    .venv/bin/python bench/security_probe.py [--debug 1]

Starts Daphne on loopback (DEBUG on by default, as `make run` serves) against a fresh SQLite
file in a temporary directory, with the default THROTTLE_RATES, and sends: 15 wrong-password
token requests from one address, an unknown /api/ path, a disallowed Host, a body over the
limit, malformed JSON, an empty multipart POST, 70 key writes. Prints what came back (status,
content type, size, code) as a Markdown table. Every request goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from tests.live import daphne  # noqa: E402 - needs the path above


def describe(response: requests.Response) -> str:
    try:
        code = response.json().get("code", "—")
    except ValueError:
        code = "not JSON"
    return (
        f"{response.status_code} | {response.headers.get('Content-Type', 'none')} | "
        f"{len(response.content)} B | {code}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debug", default="1")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="probe-"))
    env = {
        "DEBUG": args.debug,
        "SECRET_KEY": "probe-secret-key-" + "x" * 40,
        "CRYPTOGRAPHY_KEY": "probe-cryptography-key",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "REDIS_URL": "",
        "THROTTLE_RATES": "auth=10/min,start=600/min,chat=60/min,keys=60/min",
        "LOG_LEVEL": "ERROR",
    }
    os.environ.update(env)
    subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=BASE_DIR,
        check=True,
    )
    subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "seed_demo", "--password", "probe-pass-123"],
        cwd=BASE_DIR,
        check=True,
        capture_output=True,
    )
    rows = []
    with daphne(env) as url:
        token = requests.post(
            f"{url}/api/auth/token/",
            json={"username": "demo", "password": "probe-pass-123"},
            timeout=30,
        ).json()["token"]
        auth = {"Authorization": f"Token {token}"}
        statuses, started = [], time.monotonic()
        for i in range(15):
            response = requests.post(
                f"{url}/api/auth/token/",
                json={"username": f"guess{i}", "password": "wrong"},
                timeout=30,
            )
            statuses.append(response.status_code)
        took = time.monotonic() - started
        rows.append(
            (
                "15 wrong-password token requests, one address",
                f"{statuses.count(400)}× 400, {statuses.count(429)}× 429 "
                f"(Retry-After {response.headers.get('Retry-After')} s) in {took:.1f} s",
            )
        )
        rows.append(
            ("GET /api/no-such-path/", describe(requests.get(f"{url}/api/nope/", timeout=30)))
        )
        rows.append(
            (
                "GET /api/graphs/ with Host: evil.example",
                describe(
                    requests.get(f"{url}/api/graphs/", headers={"Host": "evil.example"}, timeout=30)
                ),
            )
        )
        big = b"x" * (17 * 1024 * 1024)
        rows.append(
            (
                "POST /api/graphs/ with 17 MiB",
                describe(requests.post(f"{url}/api/graphs/", data=big, headers=auth, timeout=60)),
            )
        )
        for probe, body, content_type in (
            ("POST /api/graphs/ malformed JSON", b'{"name": ', "application/json"),
            ("POST /api/graphs/ empty multipart", b"", "multipart/form-data; boundary=x"),
        ):
            response = requests.post(
                f"{url}/api/graphs/",
                data=body,
                headers={**auth, "Content-Type": content_type},
                timeout=30,
            )
            rows.append((probe, describe(response)))
        key_statuses = []
        for i in range(70):
            key_statuses.append(
                requests.post(
                    f"{url}/api/keys/",
                    json={"provider": "groq", "name": f"k{i}", "secret": "gsk_" + "a" * 40},
                    headers=auth,
                    timeout=30,
                ).status_code
            )
        rows.append(
            (
                "70 key writes by one user",
                f"{key_statuses.count(201)}× 201, {key_statuses.count(429)}× 429",
            )
        )
    print(f"DEBUG={args.debug}\n\n| probe | answer (status, type, size, code) |\n|---|---|")
    for probe, answer in rows:
        print(f"| {probe} | {answer} |")


if __name__ == "__main__":
    main()
