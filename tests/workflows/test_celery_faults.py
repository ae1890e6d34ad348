"""``WORKFLOW_EXECUTOR=celery`` under faults, with real processes: ``celery -A canvas worker``
workers, the fake Ollama, and a Redis (and a PostgreSQL cluster) that each test starts for
itself on a free port (tests/services.py); the shared servers are never stopped.

- a worker SIGKILLed mid-run: another worker resumes the run after its last finished node;
- Redis stopped 10 s mid-run: no worker exits, a start during the outage answers 202 and its
  lost dispatch is sent again by the sweep, every run ends, logs gapless, no node twice;
- PostgreSQL restarted mid-run: REST answers 503 meanwhile, the run finishes after;
- a worker idle for 60 s takes the next run within a second.

The idle worker starts with the module and idles while the other tests run (its test comes
last), so the module costs about 60 s, not 60 s more than the rest.
"""

from __future__ import annotations

import signal
import time

import pytest
import requests
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tests.fakes.base import Behaviour
from tests.live import daphne, database_url_for, server_env_for_test_db, wait_until
from tests.services import (
    READY,
    PostgresCluster,
    RedisServer,
    celery_app_for,
    celery_worker,
)
from tests.workflows.conftest import build_graph, events_of, runs_by_key, wait_for
from tests.workflows.test_recovery import assert_resumed_once, two_call_graph
from workflows import executors
from workflows.executors import CeleryExecutor
from workflows.models import Execution, NodeRun
from workflows.services import execution_create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

IDLE_SECONDS = 60
FAST_RECOVERY = {
    "WORKFLOW_HEARTBEAT_INTERVAL": "0.3",
    "WORKFLOW_STALE_AFTER": "1.5",
    "WORKFLOW_RECOVERY_INTERVAL": "0.5",
}


@pytest.fixture(scope="module")
def idle_worker(django_db_setup):
    """A worker on its own Redis that nothing wakes until the idle test (last in the file).

    Its sweep would take other tests' runs in the shared test database: a stale-after of an
    hour keeps it out of them.
    """
    with RedisServer().start_context() as redis:
        env = server_env_for_test_db(
            CELERY_BROKER_URL=redis.url, WORKFLOW_STALE_AFTER="3600", LOG_LEVEL="INFO"
        )
        worker = celery_worker(env)
        ready_at = time.monotonic()
        try:
            yield redis, worker, ready_at
        finally:
            worker.stop()


@pytest.fixture(scope="module", autouse=True)
def _start_idle_worker_first(idle_worker):
    """Start the idle worker with the module, so it idles while the other tests run."""


@pytest.fixture(scope="module")
def broker(django_db_setup):
    """This module's Redis: the broker and the channel layer of its workers."""
    with RedisServer().start_context() as redis:
        yield redis


@pytest.fixture
def workers():
    started = []
    yield started
    for worker in started:
        worker.kill()


@pytest.fixture
def send_to(settings, monkeypatch):
    """Make this process's executor send to ``broker_url`` (as a Daphne would)."""

    def bind(broker_url: str) -> CeleryExecutor:
        settings.WORKFLOW_EXECUTOR = "celery"
        executor = CeleryExecutor(app=celery_app_for(broker_url))
        monkeypatch.setattr(executors, "_executor", executor)
        return executor

    return bind


def worker_env(redis: RedisServer, **extra: str) -> dict[str, str]:
    return server_env_for_test_db(
        CELERY_BROKER_URL=redis.url, REDIS_URL=redis.url, **FAST_RECOVERY, **extra
    )


def pid_of(execution: Execution) -> int:
    return int(execution.worker.split(":")[1])


def test_sigkilled_worker_run_resumes_on_another_after_the_last_finished_node(
    user, fake_ollama, broker, workers, send_to
):
    env = worker_env(broker, OLLAMA_BASE_URL=fake_ollama.url, CELERY_WORKER_CONCURRENCY="1")
    workers.extend(celery_worker(env, ready=False) for _ in range(3))
    for worker in workers:
        worker.wait_for_output(READY, timeout=60)
    send_to(broker.url)
    fake_ollama.enqueue(Behaviour(), Behaviour(first_token_delay=60), path="/api/chat")
    graph = two_call_graph(user)

    execution = execution_create(user=user, graph=graph, inputs={})
    wait_until(lambda: len(fake_ollama.requests) >= 2, what="the second LLM call")
    wait_until(
        lambda: NodeRun.objects.filter(node_id=graph.node_ids["llm2"], status="running").exists(),
        what="llm2 running",
    )
    execution.refresh_from_db()
    victim = next(w for w in workers if w.pid == pid_of(execution))
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(5)

    execution = wait_for(execution, timeout=30)
    assert_resumed_once(graph, execution, fake_ollama)
    survivors = [w for w in workers if w is not victim]
    assert pid_of(execution) in {w.pid for w in survivors}

    # Prefetch 1 and one slot each: several runs at once spread over both live workers.
    fake_ollama.enqueue(*[Behaviour(first_token_delay=1.0) for _ in range(4)], path="/api/chat")
    slow = build_graph(
        user,
        {
            "p": ("text", {"text": "hi"}),
            "llm": ("llm", {"provider": "ollama", "model": "llama3.2"}),
        },
        [("p", "text", "llm", "prompt")],
        name="slow",
    )
    runs = [execution_create(user=user, graph=slow, inputs={}) for _ in range(4)]
    for run in runs:
        assert wait_for(run, timeout=30).status == "succeeded"
    assert {pid_of(run) for run in runs} == {w.pid for w in survivors}
    assert all(w.alive() for w in survivors)


def assert_clean_log(graph, execution) -> None:
    """Gapless seq, one terminal event, and no node finished twice."""
    events = events_of(execution)
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    names = [name for _, name, _ in events]
    terminal = {"execution.completed", "execution.failed", "execution.cancelled"}
    assert [n for n in names if n in terminal] == [names[-1]]
    for key, node_id in graph.node_ids.items():
        finished = [
            e
            for _, e, d in events
            if e in ("node.completed", "node.cached") and d["node"] == node_id
        ]
        assert len(finished) <= 1, key


def test_redis_stopped_for_10_s_mid_run(user, api_client, fake_ollama, broker, workers, send_to):
    # Given a worker running a run whose first call streams for ~4 s
    env = worker_env(broker, OLLAMA_BASE_URL=fake_ollama.url)
    workers.append(celery_worker(env))
    send_to(broker.url)
    fake_ollama.enqueue(
        Behaviour(reply=" ".join(["tok"] * 80), token_interval=0.05),
        Behaviour(),
        Behaviour(),
        Behaviour(),
        path="/api/chat",
    )
    graph = two_call_graph(user)
    first = execution_create(user=user, graph=graph, inputs={})
    wait_until(lambda: fake_ollama.requests, what="the first LLM call")

    # When Redis stops for 10 s, and a run is started meanwhile
    broker.stop()
    outage_began = time.monotonic()
    response = api_client.post(f"/api/graphs/{graph.id}/executions/", {"inputs": {}})
    assert response.status_code == 202, response.content
    second = Execution.objects.get(pk=response.json()["id"])
    assert second.status == "queued"
    time.sleep(max(0.0, 10 - (time.monotonic() - outage_began)))
    assert workers[0].alive(), workers[0].output
    broker.start()

    # Then both runs end (the second through the sweep's re-send), the worker never exited
    for execution in (first, second):
        execution = wait_for(execution, timeout=45)
        assert execution.status == "succeeded", execution.error
        assert_clean_log(graph, execution)
        runs = runs_by_key(graph, execution)
        assert (runs["llm1"].attempts, runs["llm2"].attempts) == (1, 1)
    assert workers[0].alive(), workers[0].output
    assert "Unrecoverable error" not in workers[0].output


def api_get(session, url: str, *, ok=(200,), timeout: float = 30.0):
    """GET until the answer is one of ``ok`` (a 503 while the database comes back is fine)."""
    deadline = time.monotonic() + timeout
    while True:
        response = session.get(url, timeout=15)
        if response.status_code in ok or time.monotonic() > deadline:
            return response
        assert response.status_code == 503, response.text
        time.sleep(0.2)


def test_postgresql_restarted_mid_run(user, fake_ollama, broker, workers):
    # Given a Daphne and a worker on a PostgreSQL of this test's own, holding a copy of the
    # test database (its user, token and graph)
    token = Token.objects.create(user=user)
    graph = two_call_graph(user)
    fake_ollama.enqueue(
        Behaviour(reply=" ".join(["tok"] * 60), token_interval=0.05), path="/api/chat"
    )
    cluster = PostgresCluster().init()
    try:
        database = cluster.copy_database(database_url_for(connection.settings_dict), "canvas")
        env = worker_env(
            broker,
            DATABASE_URL=database,
            OLLAMA_BASE_URL=fake_ollama.url,
            WORKFLOW_EXECUTOR="celery",
            # A request waits this long for a connection before answering 503.
            DATABASE_POOL_TIMEOUT="2",
        )
        workers.append(celery_worker(env))
        with daphne(env) as served:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token.key}"
            api = f"{served}/api"
            started = session.post(
                f"{api}/graphs/{graph.id}/executions/", json={"inputs": {}}, timeout=30
            )
            assert started.status_code == 202, started.text
            run = f"{api}/executions/{started.json()['id']}/"
            wait_until(lambda: fake_ollama.requests, what="the first LLM call")

            # When PostgreSQL restarts mid-run
            cluster.stop()
            down = [
                session.get(run, timeout=15),
                session.post(
                    f"{api}/graphs/{graph.id}/executions/", json={"inputs": {}}, timeout=15
                ),
            ]
            time.sleep(1)
            cluster.start()

            # Then REST answered 503 meanwhile, and the run finishes after recovery
            for response in down:
                assert response.status_code == 503, response.text
                assert response.json()["code"] == "unavailable"
                assert int(response.headers["Retry-After"]) > 0
            finished = api_get(session, run, timeout=60)
            deadline = time.monotonic() + 60
            while (
                finished.json()["status"] in ("queued", "running") and time.monotonic() < deadline
            ):
                time.sleep(0.3)
                finished = api_get(session, run)
            body = finished.json()
            assert body["status"] == "succeeded", body
            events = api_get(session, f"{run}events/").json()["results"]
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            names = [e["event"] for e in events]
            assert names.count("execution.completed") == 1
            assert names[-1] == "execution.completed"
            for node_id in graph.node_ids.values():
                completed = [
                    e
                    for e in events
                    if e["event"] == "node.completed" and e["data"]["node"] == node_id
                ]
                assert len(completed) == 1
            # Only the start that answered 202 made a run.
            runs = api_get(session, f"{api}/executions/").json()
            assert runs["count"] == 1
        assert workers[0].alive(), workers[0].output
    finally:
        cluster.destroy()


def test_idle_worker_takes_the_next_run_within_a_second(user, idle_worker, send_to):
    redis, worker, ready_at = idle_worker
    # Idle for IDLE_SECONDS since it was ready (the other tests of this module ran meanwhile).
    time.sleep(max(0.0, IDLE_SECONDS - (time.monotonic() - ready_at)))
    assert worker.alive(), worker.output
    send_to(redis.url)
    graph = build_graph(
        user,
        {"t": ("text", {"text": "awake"}), "out": ("output", {"name": "o"})},
        [("t", "text", "out", "value")],
        name="idle",
    )
    sent = timezone.now()
    execution = wait_for(execution_create(user=user, graph=graph, inputs={}), timeout=10)
    assert execution.status == "succeeded"
    assert (execution.started_at - sent).total_seconds() < 1.0
    assert worker.alive()
    assert "Traceback" not in worker.output, worker.output
