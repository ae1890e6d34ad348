"""Recovery for real: worker processes killed with SIGKILL mid-run, then resumed elsewhere.

The graph runs two LLM calls against the fake Ollama (in this test process, on loopback); the
first worker is killed while the second call is in flight. The run must complete with each
finished node run exactly once (the first call is not repeated), a gapless event log and
exactly one terminal event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.base import Behaviour
from tests.live import server_env_for_test_db, wait_until
from tests.workflows.conftest import Target, build_graph, events_of, runs_by_key
from workflows.models import Execution, NodeRun

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
FIRST_PROMPT = "Why is the sky blue?"


def spawn(*args: str, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        **server_env_for_test_db(),
        "WORKFLOW_HEARTBEAT_INTERVAL": "0.3",
        "WORKFLOW_STALE_AFTER": "1.5",
        "WORKFLOW_RECOVERY_INTERVAL": "0.5",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    return subprocess.Popen(  # noqa: S603 - our own manage.py, fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def two_call_graph(user):
    return build_graph(
        user,
        {
            "p": ("text", {"text": FIRST_PROMPT}),
            "llm1": ("llm", {"provider": "ollama", "model": "llama3.2"}),
            "tpl": ("template", {"template": "Summarize: {x}"}),
            "llm2": ("llm", {"provider": "ollama", "model": "llama3.2"}),
            "out": ("output", {"name": "summary"}),
        },
        [
            ("p", "text", "llm1", "prompt"),
            ("llm1", "text", "tpl", "x"),
            ("tpl", "text", "llm2", "prompt"),
            ("llm2", "text", "out", "value"),
        ],
        name="two-calls",
    )


def prompts(fake) -> list[str]:
    return [r.json()["messages"][-1]["content"] for r in fake.requests if r.path == "/api/chat"]


def assert_resumed_once(graph, execution, fake):
    assert execution.status == "succeeded", execution.error
    runs = runs_by_key(graph, execution)
    assert {k: r.status for k, r in runs.items()} == dict.fromkeys(runs, "succeeded")
    assert runs["llm1"].attempts == 1
    assert runs["llm2"].attempts == 2
    assert NodeRun.objects.filter(execution=execution).count() == len(graph.node_ids)
    # The finished first call was not repeated; the interrupted second one was.
    sent = prompts(fake)
    assert sent.count(FIRST_PROMPT) == 1
    assert len(sent) == 3
    events = events_of(execution)
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    names = [e for _, e, _ in events]
    assert names.count("execution.started") == 1
    terminal = [
        n for n in names if n in ("execution.completed", "execution.failed", "execution.cancelled")
    ]
    assert terminal == ["execution.completed"]
    assert names[-1] == "execution.completed"
    for key in graph.node_ids:
        completed = [
            d for _, e, d in events if e == "node.completed" and d["node"] == graph.node_ids[key]
        ]
        assert len(completed) == 1, key
    retried = [d for _, e, d in events if e == "node.retrying"]
    assert [d["node"] for d in retried] == [graph.node_ids["llm2"]]
    assert "interrupted" in retried[0]["error"]


def kill_during_second_call(proc, graph, fake):
    wait_until(lambda: len(prompts(fake)) >= 2, what="the second LLM call")
    wait_until(
        lambda: NodeRun.objects.filter(node_id=graph.node_ids["llm2"], status="running").exists(),
        what="llm2 running",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)


def test_sigkilled_foreground_run_is_resumed_by_recover_executions(
    user,
    fake_ollama,
    processes,
):
    fake_ollama.enqueue(Behaviour(), Behaviour(first_token_delay=60), path="/api/chat")
    graph = two_call_graph(user)
    worker = spawn("run_workflow", str(graph.id), OLLAMA_BASE_URL=fake_ollama.url)
    processes.append(worker)
    kill_during_second_call(worker, graph, fake_ollama)
    execution = Execution.objects.get(graph=graph)
    assert execution.status == "running"

    # Not stale yet: the sweep leaves it alone.
    early = spawn(
        "recover_executions",
        "--dry-run",
        OLLAMA_BASE_URL=fake_ollama.url,
        WORKFLOW_STALE_AFTER="30",
    )
    processes.append(early)
    assert "0 stale running" in early.communicate(timeout=30)[0]

    time.sleep(1.6)
    recover = spawn("recover_executions", OLLAMA_BASE_URL=fake_ollama.url)
    processes.append(recover)
    output = recover.communicate(timeout=60)[0]
    assert recover.returncode == 0, output
    assert "1 stale running" in output
    assert f"{execution.id}: succeeded" in output
    execution.refresh_from_db()
    assert_resumed_once(graph, execution, fake_ollama)


def test_interrupted_non_get_http_call_fails_as_interrupted(user, processes, settings):
    with Target() as target:
        graph = build_graph(
            user,
            {
                "http": ("http", {"method": "POST", "url": target.url + "/slow"}),
                "out": ("output", {"name": "o"}),
            },
            [("http", "body", "out", "value")],
            name="post",
        )
        worker = spawn("run_workflow", str(graph.id), HTTP_ALLOWED_PRIVATE_TARGETS="127.0.0.1")
        processes.append(worker)
        wait_until(lambda: target.requests, what="the POST")
        wait_until(lambda: NodeRun.objects.filter(status="running").exists(), what="running")
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
        time.sleep(1.6)
        recover = spawn("recover_executions", HTTP_ALLOWED_PRIVATE_TARGETS="127.0.0.1")
        processes.append(recover)
        output = recover.communicate(timeout=60)[0]
        assert recover.returncode == 0, output
        execution = Execution.objects.get(graph=graph)
        assert execution.status == "failed"
        assert "interrupted" in execution.error
        assert len(target.requests) == 1  # never sent twice
        run = runs_by_key(graph, execution)["http"]
        assert run.status == "failed"
        assert runs_by_key(graph, execution)["out"].status == "cancelled"
        names = [e for _, e, _ in events_of(execution)]
        assert names[-1] == "execution.failed"


def test_run_workflow_streams_tokens_and_ctrl_c_cancels_cleanly(user, fake_ollama, processes):
    fake_ollama.enqueue(
        Behaviour(reply=" ".join(["tick"] * 200), token_interval=0.05), path="/api/chat"
    )
    graph = two_call_graph(user)
    proc = spawn(
        "run_workflow", "two-calls", "--owner", user.username, OLLAMA_BASE_URL=fake_ollama.url
    )
    processes.append(proc)
    wait_until(lambda: len(prompts(fake_ollama)) >= 1, what="the first LLM call")
    time.sleep(0.5)  # some tokens stream
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 1, output
    assert "▶ llm1 (llm) started" in output
    assert "llm1 » tick tick" in output  # tokens printed as they streamed
    assert "Cancelling" in output
    assert "Status: cancelled" in output
    execution = Execution.objects.get(graph=graph)
    assert execution.status == "cancelled"
    assert runs_by_key(graph, execution)["llm1"].status == "cancelled"
    assert fake_ollama.wait_for_idle(timeout=1.0)  # the stream's connection was closed
    assert len(prompts(fake_ollama)) == 1
