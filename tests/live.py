"""Helpers for tests that run real processes: a Daphne on loopback, manage.py commands, and
waiting for something they do."""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "it") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_manage(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess:
    """``python manage.py *args`` in the project, as an operator types it, under ``env``."""
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"daphne did not listen on {port} within {timeout}s")


@contextlib.contextmanager
def daphne_process(
    env: dict[str, str], *, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Serve canvas.asgi with Daphne under ``env`` (merged over os.environ), as ``make run``
    does (``canvas.daphne_server``).

    Yields the base URL and the process; stops the server on exit. ``log``: a file that gets
    the server's stderr (its log), for tests that read it; without one the log goes to a
    temporary file. (Never a pipe: nobody reads it while the server runs, and once ~64 KB of
    warnings filled it, the server blocked in its next log write and answered nothing more.)
    """
    with log.open("w+b") if log is not None else tempfile.TemporaryFile() as log_file:
        port = free_port()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter
            [
                sys.executable,
                "-m",
                "canvas.daphne_server",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "canvas.asgi:application",
            ],
            cwd=BASE_DIR,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            try:
                wait_for_port(port, process=process)
            except RuntimeError as exc:  # it exited: say why
                log_file.seek(0)
                tail = log_file.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"{exc}; its log ends:\n{tail}") from None
            yield f"http://127.0.0.1:{port}", process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def daphne(env: dict[str, str]) -> Iterator[str]:
    """Serve canvas.asgi with Daphne under ``env``; yield its base URL."""
    with daphne_process(env) as (url, _):
        yield url


def server_env_for_test_db(**extra: str) -> dict[str, str]:
    """The environment of a server or worker process that serves the test database.

    Call from a fixture that depends on ``django_db_setup`` (the test database must exist);
    tests that use such a process need ``django_db(transaction=True)`` to share their rows.
    """
    from django.db import connection

    return {
        "DATABASE_URL": database_url_for(connection.settings_dict),
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **extra,
    }


def database_url_for(settings_dict: dict) -> str:
    """A DATABASE_URL naming the database ``settings_dict`` points at (the test database)."""
    engine = settings_dict["ENGINE"]
    if engine.endswith(("sqlite3", "canvas.sqlite")):
        return f"sqlite:///{settings_dict['NAME']}"
    if engine.endswith("postgresql"):
        user = settings_dict.get("USER") or ""
        password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
        auth = f"{user}{password}@" if user else ""
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    raise ValueError(f"no URL form for {engine}")
