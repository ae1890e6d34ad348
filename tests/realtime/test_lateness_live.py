"""Bounded lateness: a stored event reaches a subscribed socket within 2 s of its commit even
when the process that wrote it died before publishing it, whatever the heartbeat interval.

The writer is a real second process: it stores the run's last event through the events module
(the same transaction-and-on_commit path the engine uses) and is SIGKILLed by its own publish
hook, after the commit and before anything reaches the channel layer.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.utils import timezone
from websockets.sync.client import connect

from tests.live import BASE_DIR, daphne, server_env_for_test_db
from tests.realtime.test_protocol_live import token_of, ws_url
from tests.workflows.conftest import build_graph
from workflows.models import Execution, ExecutionEvent

pytestmark = pytest.mark.django_db(transaction=True)

# Stores execution.completed for the run, then dies in the on-commit publish.
COMMIT_AND_DIE = """
import os, signal, sys
import django
django.setup()
from django.db import transaction
from canvas.core.publisher import publisher
from workflows import events
from workflows.models import Execution

def die_before_publishing(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

# The hand-off of committed events to the channel layer (canvas.core.publisher).
publisher.publish_many = die_before_publishing
execution_id = sys.argv[1]
with transaction.atomic():
    Execution.objects.filter(pk=execution_id).update(status="succeeded")
    events.event_record(
        execution_id=execution_id,
        event="execution.completed",
        data={"status": "succeeded", "outputs": {}},
    )
raise SystemExit("the publish hook did not run")
"""


@pytest.fixture(scope="module")
def served_slow_heartbeat(django_db_setup):
    # A heartbeat far longer than the bound: only the tail check can deliver in time.
    env = server_env_for_test_db(REALTIME_HEARTBEAT_SECONDS="60", WORKFLOW_EXECUTOR="inline")
    with daphne(env) as base_url:
        yield base_url, env


def running_execution(user) -> Execution:
    """A run another worker owns (fresh heartbeat), with its first two events stored."""
    graph = build_graph(user, {"t": ("text", {"text": "x"})}, [], name="late")
    now = timezone.now()
    execution = Execution.objects.create(
        owner=user,
        graph=graph,
        graph_version=graph.version,
        snapshot={"nodes": [], "edges": []},
        status="running",
        queued_at=now,
        started_at=now,
        heartbeat_at=now,
        worker="elsewhere:1",
    )
    for seq, event in ((1, "execution.queued"), (2, "execution.started")):
        ExecutionEvent.objects.create(
            execution=execution, seq=seq, event=event, data={"status": "running"}, ts=now
        )
    return execution


@pytest.mark.parametrize("round_", range(2))
def test_an_event_whose_writer_died_before_publishing_arrives_within_2_s(
    served_slow_heartbeat, user, round_
):
    base_url, env = served_slow_heartbeat
    execution = running_execution(user)
    with connect(ws_url(base_url, f"?token={token_of(user)}")) as ws:
        ws.send(json.dumps({"type": "subscribe", "topic": f"execution:{execution.id}", "after": 0}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        assert [json.loads(ws.recv(timeout=10))["seq"] for _ in range(2)] == [1, 2]
        time.sleep(0.25 * round_)  # at different points of the server's check interval

        writer = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", COMMIT_AND_DIE, str(execution.id)],
            cwd=BASE_DIR,
            env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": "canvas.settings"},
            capture_output=True,
            timeout=60,
            check=False,
        )
        died_at = time.monotonic()
        assert writer.returncode == -signal.SIGKILL, writer.stderr.decode()[-2000:]
        assert ExecutionEvent.objects.filter(execution=execution, seq=3).exists()

        frame = json.loads(ws.recv(timeout=5))
        late = time.monotonic() - died_at
    assert (frame["type"], frame["seq"], frame["event"]) == ("event", 3, "execution.completed")
    assert late < 2.0, f"arrived {late:.2f} s after the commit"
