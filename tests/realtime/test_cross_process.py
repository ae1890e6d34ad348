"""Cross-process: a Celery worker runs the execution; a client on Daphne sees every event.

Needs Redis (the layers are the only link between the two processes for events); the broker
is a Redis of this module's own (tests/services.py), so no other test run takes its tasks.
"""

import json

import pytest
from websockets.sync.client import connect

from tests.fakes.base import Behaviour
from tests.live import daphne, server_env_for_test_db
from tests.realtime.test_order_live import order_problems, run_and_watch
from tests.realtime.test_protocol_live import (
    events_until_final,
    llm_graph,
    recv,
    start_run,
    token_of,
    ws_url,
)
from tests.services import RedisServer, celery_worker
from workflows.models import Execution

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def worker_and_server(django_db_setup, module_ollama):
    with RedisServer().start_context() as broker:
        env = server_env_for_test_db(
            OLLAMA_BASE_URL=module_ollama.url,
            WORKFLOW_EXECUTOR="celery",
            CELERY_BROKER_URL=broker.url,
            REALTIME_HEARTBEAT_SECONDS="1",
        )
        worker = celery_worker(env)
        try:
            with daphne(env) as base_url:
                yield base_url, worker
        finally:
            worker.kill()


def test_events_from_a_worker_process_reach_a_socket_on_daphne(
    worker_and_server, module_ollama, user
):
    served, worker = worker_and_server
    # Tokens are live only (never replayed): the first waits until the socket has subscribed.
    module_ollama.enqueue(Behaviour(first_token_delay=1.0, token_interval=0.02), path="/api/chat")
    graph = llm_graph(user, name="cross")
    with connect(ws_url(served, f"?token={token_of(user)}")) as ws:
        execution_id = start_run(served, user, graph)
        ws.send(json.dumps({"type": "subscribe", "topic": f"execution:{execution_id}", "after": 0}))
        assert recv(ws)["type"] == "subscribed"
        frames = events_until_final(ws, timeout=30)

    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == list(range(1, len(seqs) + 1))
    assert frames[-1]["event"] == "execution.completed"
    assert any(f["event"] == "node.token" for f in frames), "tokens cross processes too"
    execution = Execution.objects.get(pk=execution_id)
    # The run was executed by the worker process, not by Daphne.
    assert execution.worker.split(":")[1] == str(worker.pid)


def test_no_token_after_its_nodes_end_across_processes(worker_and_server, module_ollama, user):
    served, _ = worker_and_server
    watches = run_and_watch(served, user, module_ollama, runs=5)

    problems = [problem for watch in watches for problem in order_problems(watch)]
    assert not problems, f"{len(problems)} breaches, first ones: {problems[:10]}"
