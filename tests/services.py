"""Private servers and workers for fault tests: a Redis, a PostgreSQL cluster, Celery workers.

Each runs on a free loopback port in a temporary directory and is stopped by its owner, so a
test may stop, kill or restart it; the shared PostgreSQL and Redis are never touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator

from tests.live import BASE_DIR, free_port, wait_until


class RedisServer:
    """``redis-server`` on a free port, no persistence; ``stop()`` and ``start()`` again on
    the same port (a restart loses what it held, as a Redis without persistence does)."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, timeout=10, what=f"redis on {self.port}")
        return self

    def ping(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    @contextlib.contextmanager
    def start_context(self) -> Iterator[RedisServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


class PostgresCluster:
    """A throw-away PostgreSQL cluster (initdb, pg_ctl) on a free port, trust auth.

    Run as the ``postgres`` user when this process is root (PostgreSQL refuses root).
    """

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="canvas-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "log")

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = list(args)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(  # noqa: S603 - our own fixed commands
            command, capture_output=True, text=True, timeout=timeout, check=True, cwd=self.dir
        )

    def init(self) -> PostgresCluster:
        self._run(_pg_bin("initdb"), "-D", self.data, "-U", "postgres", "-A", "trust", "-N")
        return self.start()

    def start(self) -> PostgresCluster:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_pg_bin("pg_ctl"), "-D", self.data, "-l", self.log, "-o", options, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop")

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def copy_database(self, source_url: str, name: str) -> str:
        """Create ``name`` here as a copy (schema and rows) of the database at ``source_url``."""
        self._run(
            _pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name
        )
        dump = subprocess.run(  # noqa: S603
            [_pg_bin("pg_dump"), "--no-owner", "--no-privileges", source_url],
            capture_output=True,
            check=True,
            timeout=60,
        )
        subprocess.run(  # noqa: S603
            [_pg_bin("psql"), "-q", "-v", "ON_ERROR_STOP=1", self.url(name)],
            input=dump.stdout,
            capture_output=True,
            check=True,
            timeout=60,
        )
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Process:
    """A child process whose output is collected by a thread (so its pipe never fills)."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter
            args,
            cwd=BASE_DIR,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_output(self, pattern: str, timeout: float = 30.0) -> None:
        wait_until(
            lambda: re.search(pattern, self.output) or not self.alive(),
            timeout=timeout,
            what=f"{pattern!r} from pid {self.pid}",
        )
        assert re.search(pattern, self.output), f"exited {self.popen.returncode}:\n{self.output}"

    def kill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


READY = r"canvas.celery worker \S+ ready"


def celery_worker(env: dict[str, str], *, ready: bool = True) -> Process:
    """``celery -A canvas worker`` (nothing else: the settings configure it) under ``env``,
    logging at INFO so that its "ready" line can be waited for."""
    worker = Process(
        [sys.executable, "-m", "celery", "-A", "canvas", "worker"],
        {"WORKFLOW_EXECUTOR": "celery", "LOG_LEVEL": "INFO", **env},
    )
    if ready:
        try:
            worker.wait_for_output(READY, timeout=60)
        except BaseException:
            worker.kill()  # never leave a worker holding the test database
            raise
    return worker


def celery_app_for(broker_url: str):
    """A Celery app configured like ``canvas.celery.app`` but sending to ``broker_url``."""
    from celery import Celery

    app = Celery("canvas-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = broker_url
    return app
