"""Order per socket against a real Daphne: no node.token after its node's end or the run's end.

The reproduction of issue 14: with a 1 s heartbeat (whose backfill reads the database) and 20
runs streaming tokens at once, sockets subscribed at different moments (before the run, mid-run,
without ``after``, reconnecting with ``after``) must never see a node's token after that node's
terminal event or the run's terminal event, and a socket that subscribed before a node started
must have received, as tokens, exactly the node's final text before its ``node.completed``.
"""

import json
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from websockets.sync.client import connect

from tests.fakes.base import Behaviour
from tests.live import daphne, server_env_for_test_db
from tests.realtime.test_protocol_live import start_run, token_of, ws_url
from tests.workflows.conftest import build_graph
from workflows.models import TERMINAL_STATUSES

pytestmark = pytest.mark.django_db(transaction=True)

FINAL = {"execution.completed", "execution.failed", "execution.cancelled"}
NODE_END = {"node.completed", "node.failed", "node.skipped", "node.cached"}
RUNS = 20
WORDS = 80


@pytest.fixture(scope="module")
def served_fast_heartbeat(django_db_setup, module_ollama):
    env = server_env_for_test_db(
        OLLAMA_BASE_URL=module_ollama.url,
        WORKFLOW_EXECUTOR="inline",
        REALTIME_HEARTBEAT_SECONDS="1",
    )
    with daphne(env) as base_url:
        yield base_url


def two_llm_graph(user, name):
    llm = {"provider": "ollama", "model": "llama3.2"}
    return build_graph(
        user,
        {
            "p": ("text", {"text": "Tell me a long story."}),
            "first": ("llm", llm),
            "second": ("llm", llm),
            "out": ("output", {"name": "story"}),
        },
        [
            ("p", "text", "first", "prompt"),
            ("first", "text", "second", "prompt"),
            ("second", "text", "out", "value"),
        ],
        name=name,
    )


@dataclass
class Watch:
    """What one socket received, and when its subscription was confirmed."""

    label: str
    subscribed_at: float = 0.0
    snapshot: dict = field(default_factory=dict)
    frames: list = field(default_factory=list)
    error: str = ""


def read_until_quiet_after_final(ws, watch: Watch, *, linger: float) -> None:
    """Read events until the run's terminal event, then ``linger`` seconds more (late tokens
    arrive after it)."""
    deadline = time.monotonic() + 60
    final_at = None
    while time.monotonic() < (final_at + linger if final_at else deadline):
        try:
            frame = json.loads(ws.recv(timeout=0.2))
        except TimeoutError:
            continue
        if frame["type"] != "event":
            continue
        watch.frames.append(frame)
        if frame["event"] in FINAL and final_at is None:
            final_at = time.monotonic()
    if final_at is None:
        watch.error = "no terminal event"


def subscribe(ws, execution_id, after, watch: Watch) -> None:
    message = {"type": "subscribe", "topic": f"execution:{execution_id}"}
    if after is not None:
        message["after"] = after
    ws.send(json.dumps(message))
    while True:
        frame = json.loads(ws.recv(timeout=10))
        if frame["type"] == "subscribed":
            watch.subscribed_at = time.time()
            watch.snapshot = frame["snapshot"]
            return
        if frame["type"] == "error":
            raise AssertionError(frame)


def watch_socket(url, execution_id, watch: Watch, *, delay, after, reconnect_after=None):
    try:
        time.sleep(delay)
        if reconnect_after is not None:
            # A first connection that sees a few events and drops; the checked one resumes.
            last = 0
            with connect(url) as ws:
                subscribe(ws, execution_id, 0, Watch("first"))
                seen = 0
                while seen < reconnect_after:
                    frame = json.loads(ws.recv(timeout=10))
                    if frame.get("seq"):
                        last = frame["seq"]
                        seen += 1
            after = last
        with connect(url) as ws:
            subscribe(ws, execution_id, after, watch)
            if after is None and watch.snapshot["status"] in TERMINAL_STATUSES:
                return  # finished before the subscription: a snapshot and nothing more
            read_until_quiet_after_final(ws, watch, linger=1.5)
    except Exception as exc:  # reported by the test thread
        watch.error = f"{type(exc).__name__}: {exc}"


def order_problems(watch: Watch) -> list[str]:
    """Every breach of the order rules in what one socket received."""
    problems = []
    ended: set[str] = set()
    run_ended = False
    text: dict[str, str] = defaultdict(str)
    next_index: dict[str, int] = {}
    started_after_subscribe: set[str] = set()
    for position, frame in enumerate(watch.frames):
        event, data = frame["event"], frame["data"]
        node = data.get("node")
        where = f"{watch.label} frame {position}"
        if event == "node.token":
            if run_ended:
                problems.append(f"{where}: token of {node} after the run's terminal event")
            elif node in ended:
                problems.append(f"{where}: token of {node} after its terminal event")
            if node in next_index and data["index"] != next_index[node]:
                problems.append(f"{where}: index {data['index']}, expected {next_index[node]}")
            next_index[node] = data["index"] + data.get("count", 1)
            text[node] += data["text"]
        elif event in ("node.started", "node.retrying"):
            text[node] = ""
            next_index.pop(node, None)
            if event == "node.started" and data["type"] == "llm":
                started = datetime.fromisoformat(frame["ts"]).timestamp()
                if started > watch.subscribed_at:
                    started_after_subscribe.add(node)
                    next_index[node] = 0
        elif event in NODE_END:
            ended.add(node)
            if event == "node.completed" and node in started_after_subscribe:
                final = data["outputs"]["text"]
                if text[node] != final:
                    problems.append(
                        f"{where}: {node}'s tokens before node.completed were "
                        f"{len(text[node])} characters, its text {len(final)}"
                    )
        elif event in FINAL:
            run_ended = True
    return problems


def text_checks(watch: Watch) -> int:
    """How many of the socket's nodes fall under the text rule (started after it subscribed,
    then completed)."""
    started = {
        f["data"]["node"]
        for f in watch.frames
        if f["event"] == "node.started"
        and f["data"]["type"] == "llm"
        and datetime.fromisoformat(f["ts"]).timestamp() > watch.subscribed_at
    }
    return sum(
        1 for f in watch.frames if f["event"] == "node.completed" and f["data"]["node"] in started
    )


def run_and_watch(base_url, user, fake_ollama, *, runs: int) -> list[Watch]:
    """Start ``runs`` two-LLM runs, each watched by four sockets subscribing on different
    paths; return what every socket received."""
    reply = " ".join(f"word{i}" for i in range(WORDS))
    # Each LLM call waits a little before its first token, so most sockets subscribe before
    # the second LLM node of their run starts (the text rule applies to those).
    fake_ollama.enqueue(
        *[
            Behaviour(reply=reply, first_token_delay=0.4, token_interval=0.01)
            for _ in range(runs * 2)
        ],
        path="/api/chat",
    )
    url = ws_url(base_url, f"?token={token_of(user)}")
    rng = random.Random(14)
    watches: list[Watch] = []
    threads: list[threading.Thread] = []
    graphs = [two_llm_graph(user, name=f"order-{n}") for n in range(runs)]
    for n, graph in enumerate(graphs):
        execution_id = start_run(base_url, user, graph)
        plans = [
            ("at once, after=0", {"delay": 0.0, "after": 0}),
            ("mid-run, after=0", {"delay": rng.uniform(0.1, 0.8), "after": 0}),
            ("mid-run, no after", {"delay": rng.uniform(0.1, 0.8), "after": None}),
            ("reconnect", {"delay": 0.0, "after": None, "reconnect_after": 3}),
        ]
        for label, plan in plans:
            watch = Watch(f"run {n} {label}")
            watches.append(watch)
            thread = threading.Thread(
                target=watch_socket, args=(url, execution_id, watch), kwargs=plan, daemon=True
            )
            thread.start()
            threads.append(thread)
    for thread in threads:
        thread.join(timeout=90)
    errors = [f"{w.label}: {w.error}" for w in watches if w.error]
    assert not errors, errors
    return watches


def test_no_token_after_its_nodes_end_on_any_path(served_fast_heartbeat, module_ollama, user):
    watches = run_and_watch(served_fast_heartbeat, user, module_ollama, runs=RUNS)

    problems = [problem for watch in watches for problem in order_problems(watch)]
    assert not problems, f"{len(problems)} breaches, first ones: {problems[:10]}"
    # The text rule was exercised: many sockets subscribed before a node started (how many
    # depends on the machine's load; 2 nodes x 4 sockets x 20 runs could).
    assert sum(text_checks(watch) for watch in watches) >= RUNS // 2
