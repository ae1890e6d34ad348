"""The llm and http nodes against the fake providers and a loopback target (real HTTP)."""

import json
import threading
import time

import pytest
from django.db import connection

from canvas.core.events import execution_topic
from canvas.core.publisher import listen
from tests.fakes.base import Behaviour, tokens_of
from tests.fakes.groq import TEST_KEY
from tests.workflows.conftest import (
    Target,
    build_graph,
    events_of,
    run_graph,
    runs_by_key,
    wait_for,
)
from workflows.models import Execution, ExecutionEvent
from workflows.services import execution_cancel, execution_create

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "The sky is blue because of Rayleigh scattering."


@pytest.fixture
def ollama(fake_ollama, settings):
    settings.OLLAMA_BASE_URL = fake_ollama.url
    return fake_ollama


def llm_graph(user, *, config=None, count=1):
    nodes = {"p": ("text", {"text": "Why is the sky blue?"})}
    edges = []
    for i in range(count):
        nodes[f"llm{i}"] = ("llm", {"provider": "ollama", "model": "llama3.2", **(config or {})})
        nodes[f"out{i}"] = ("output", {"name": f"answer{i}"})
        edges += [("p", "text", f"llm{i}", "prompt"), (f"llm{i}", "text", f"out{i}", "value")]
    return build_graph(user, nodes, edges)


def chat_requests(fake):
    return [r for r in fake.requests if r.path == "/api/chat"]


def test_llm_streams_tokens_and_records_usage(user, ollama):
    ollama.enqueue(Behaviour(token_interval=0.03), path="/api/chat")
    graph = llm_graph(user)
    messages = []
    execution = execution_create(user=user, graph=graph, inputs={})
    with listen(execution_topic(execution.id), messages.append):
        execution = wait_for(execution)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == {"answer0": REPLY}
    run = runs_by_key(graph, execution)["llm0"]
    assert run.usage["provider"] == "ollama"
    assert run.usage["completion_tokens"] > 0
    assert run.outputs["usage"] == run.usage
    tokens = [m for m in messages if m["event"] == "node.token"]
    assert "".join(t["data"]["text"] for t in tokens) == REPLY
    # index is the first token's, count how many the message carries: no gap, no overlap.
    ends = [t["data"]["index"] + t["data"]["count"] for t in tokens]
    assert [t["data"]["index"] for t in tokens] == [0, *ends[:-1]]
    assert ends[-1] == len(tokens_of(REPLY))
    assert all("seq" not in t for t in tokens)
    # Tokens come after node.started and before node.completed of their node.
    names = [m["event"] for m in messages if m["data"].get("node") == graph.node_ids["llm0"]]
    assert names[0] == "node.started"
    assert names[-1] == "node.completed"
    assert not ExecutionEvent.objects.filter(event="node.token").exists()
    sent = chat_requests(ollama)[0].json()
    assert sent["messages"] == [{"role": "user", "content": "Why is the sky blue?"}]


def test_tokens_are_coalesced_when_faster_than_20ms(user, ollama):
    ollama.enqueue(Behaviour(reply=" ".join(["w"] * 200), token_interval=0.001), path="/api/chat")
    graph = llm_graph(user)
    messages = []
    execution = execution_create(user=user, graph=graph, inputs={})
    with listen(execution_topic(execution.id), messages.append):
        wait_for(execution)
    tokens = [m for m in messages if m["event"] == "node.token"]
    assert "".join(t["data"]["text"] for t in tokens) == " ".join(["w"] * 200)
    assert len(tokens) < 100  # 200 tokens in ~0.2 s arrive as at most ~one message per 20 ms


def test_text_held_back_is_sent_when_the_model_pauses(user, ollama):
    # Five tokens a millisecond apart, then nothing for a second (the stream then breaks and
    # the node starts over): the first token leaves at once, the next four are held back and
    # must leave when their 20 ms window ends, not when the stream does.
    ollama.enqueue(Behaviour(token_interval=0.001, stall_after=5, stall_for=1.0), path="/api/chat")
    graph = llm_graph(user)
    arrivals = []
    execution = execution_create(user=user, graph=graph, inputs={})
    with listen(execution_topic(execution.id), lambda m: arrivals.append((time.monotonic(), m))):
        wait_for(execution)
    first_attempt = []
    for at, message in arrivals:
        if message["event"] == "node.retrying":
            break
        if message["event"] == "node.token":
            first_attempt.append((at, message["data"]))
    assert "".join(data["text"] for _, data in first_attempt) == "".join(tokens_of(REPLY)[:5])
    assert len(first_attempt) >= 2  # the first token alone, then the held four
    assert first_attempt[-1][0] - first_attempt[0][0] < 0.5


def test_two_slow_llm_nodes_run_in_parallel(user, ollama):
    ollama.enqueue(
        Behaviour(first_token_delay=0.8), Behaviour(first_token_delay=0.8), path="/api/chat"
    )
    graph = llm_graph(user, count=2)
    started = time.monotonic()
    execution = run_graph(graph)
    elapsed = time.monotonic() - started
    assert execution.status == "succeeded", execution.error
    assert elapsed < 1.5, elapsed


def test_429_then_200_is_retried(user, ollama):
    ollama.enqueue(
        Behaviour(status=429, error="busy", headers={"Retry-After": "0"}), path="/api/chat"
    )
    graph = llm_graph(user)
    execution = run_graph(graph)
    assert execution.status == "succeeded", execution.error
    assert len(chat_requests(ollama)) == 2
    events = [e for _, e, _ in events_of(execution)]
    assert "node.retrying" in events
    assert runs_by_key(graph, execution)["llm0"].attempts == 2


def test_broken_stream_is_retried_and_partial_text_dropped(user, ollama):
    ollama.enqueue(Behaviour(drop_after=3), path="/api/chat")
    graph = llm_graph(user)
    messages = []
    execution = execution_create(user=user, graph=graph, inputs={})
    with listen(execution_topic(execution.id), messages.append):
        execution = wait_for(execution)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == {"answer0": REPLY}
    names = [m["event"] for m in messages if m["data"].get("node") == graph.node_ids["llm0"]]
    retry_at = names.index("node.retrying")
    assert "node.token" in names[:retry_at]  # partial text went out, then the retry said so
    after = [
        m
        for m in messages[
            messages.index(next(m for m in messages if m["event"] == "node.retrying")) :
        ]
        if m["event"] == "node.token"
    ]
    assert after[0]["data"]["index"] == 0
    assert "".join(t["data"]["text"] for t in after) == REPLY


def test_at_most_three_attempts_per_node(user, ollama):
    ollama.enqueue(*[Behaviour(drop_after=1) for _ in range(5)], path="/api/chat")
    graph = llm_graph(user)
    execution = run_graph(graph)
    assert execution.status == "failed"
    assert "llm0" in execution.error
    assert len(chat_requests(ollama)) == 3


def test_unknown_model_fails_with_the_providers_reason(user, ollama):
    graph = llm_graph(user, config={"model": "nope"})
    execution = run_graph(graph)
    assert execution.status == "failed"
    assert "nope" in execution.error
    assert len(chat_requests(ollama)) == 1


def test_cancel_interrupts_the_stream_within_a_second(user, ollama):
    ollama.enqueue(Behaviour(reply=" ".join(["slow"] * 100), token_interval=0.2), path="/api/chat")
    graph = llm_graph(user)
    first_token = threading.Event()
    execution = execution_create(user=user, graph=graph, inputs={})

    def watch(message):
        if message["event"] == "node.token":
            first_token.set()

    with listen(execution_topic(execution.id), watch):
        assert first_token.wait(5)
        started = time.monotonic()
        execution_cancel(execution=execution)
        execution = wait_for(execution)
        assert time.monotonic() - started < 1.0
    assert execution.status == "cancelled"
    assert runs_by_key(graph, execution)["llm0"].status == "cancelled"
    # The fake saw its connection closed.
    assert ollama.wait_for_idle(timeout=1.0)


def test_deterministic_llm_is_answered_from_the_cache(user, ollama):
    graph = llm_graph(user, config={"temperature": 0, "seed": 7})
    first = run_graph(graph)
    assert first.status == "succeeded"
    assert len(chat_requests(ollama)) == 1
    second = run_graph(graph)
    assert second.outputs == first.outputs
    assert runs_by_key(graph, second)["llm0"].status == "cached"
    assert len(chat_requests(ollama)) == 1  # no provider call the second time
    # Without a seed (or above temperature 0) the node is not cacheable.
    run_graph(llm_graph(user, config={"temperature": 0}))
    run_graph(llm_graph(user, config={"temperature": 0}))
    assert len(chat_requests(ollama)) == 3


def test_groq_uses_the_owners_key(user, fake_groq, settings):
    from integrations.keys import api_key_create

    settings.GROQ_BASE_URL = fake_groq.url + "/openai/v1"
    settings.GROQ_API_KEY = ""
    graph = llm_graph(user, config={"provider": "groq", "model": "llama-3.3-70b-versatile"})
    execution = run_graph(graph)
    assert execution.status == "failed"
    assert "groq" in execution.error.lower()
    api_key_create(owner=user, provider="groq", name="main", secret=TEST_KEY)
    execution = run_graph(graph)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs["answer0"]
    assert runs_by_key(graph, execution)["llm0"].usage["provider"] == "groq"
    assert TEST_KEY not in json.dumps([e.data for e in execution.events.all()])


# --- http ----------------------------------------------------------------------------------


@pytest.fixture
def target(settings):
    settings.HTTP_ALLOWED_PRIVATE_TARGETS = ["127.0.0.1"]
    with Target() as server:
        yield server


def http_graph(user, config):
    return build_graph(
        user,
        {
            "q": ("input", {"name": "q", "default": "cats"}),
            "http": ("http", config),
            "status": ("output", {"name": "status"}),
            "json": ("output", {"name": "json"}),
            "body": ("output", {"name": "body"}),
        },
        [
            ("q", "value", "http", "q"),
            ("http", "status", "status", "value"),
            ("http", "json", "json", "value"),
            ("http", "body", "body", "value"),
        ],
    )


def test_http_get_with_placeholders_and_a_secret_header(user, target):
    from integrations.keys import api_key_create

    api_key_create(owner=user, provider="groq", name="svc", secret="gsk_" + "s3cr" * 13)
    graph = http_graph(
        user,
        {
            "method": "POST",
            "url": target.url + "/search?q={q}",
            "headers": {"Authorization": "Bearer {secret:svc}"},
            "body": '{{"query": "{q}"}}',
        },
    )
    execution = run_graph(graph)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs["status"] == 200
    echoed = execution.outputs["json"]
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/search?q=cats"
    assert echoed["body"] == '{"query": "cats"}'
    # The secret reached the target, which echoed it back…
    assert target.requests[0].headers["Authorization"] == "Bearer gsk_" + "s3cr" * 13
    # …but the outputs hold it redacted, and the stored config, inputs and events never hold it.
    assert echoed["auth"] == "Bearer [secret:svc]"
    assert "[secret:svc]" in execution.outputs["body"]
    run = runs_by_key(graph, execution)["http"]
    assert "s3cr" not in json.dumps(execution.snapshot)
    assert "s3cr" not in json.dumps(run.inputs)
    assert "s3cr" not in json.dumps(run.outputs)
    assert "s3cr" not in json.dumps(execution.outputs)
    events = ExecutionEvent.objects.filter(execution=execution)
    assert events.filter(event="node.completed").exists()
    assert all("s3cr" not in json.dumps(e.data) for e in events)


def test_http_secret_header_is_dropped_on_a_redirect_to_another_origin(user, target):
    from integrations.keys import api_key_create

    api_key_create(owner=user, provider="ollama", name="svc", secret="tok-" + "s3cr" * 8)
    with Target() as elsewhere:
        target.enqueue(Behaviour(status=302, headers={"Location": elsewhere.url + "/landed"}))
        graph = http_graph(
            user,
            {
                "url": target.url + "/start?q={q}",
                "headers": {"X-Api-Key": "{secret:svc}", "X-Trace": "{q}"},
            },
        )
        execution = run_graph(graph)

        assert execution.status == "succeeded", execution.error
        assert target.requests[0].headers["X-Api-Key"] == "tok-" + "s3cr" * 8
        landed = elsewhere.requests[0]
        assert landed.path == "/landed"
        assert "X-Api-Key" not in landed.headers
        assert landed.headers["X-Trace"] == "cats"


def test_http_text_body_has_no_json(user, target):
    execution = run_graph(http_graph(user, {"url": target.url + "/text?q={q}"}))
    assert execution.outputs["body"] == "plain words"
    assert execution.outputs["json"] is None


def test_http_refuses_private_addresses_without_the_allow_list(user, target, settings):
    settings.HTTP_ALLOWED_PRIVATE_TARGETS = []
    execution = run_graph(http_graph(user, {"url": target.url + "/x?q={q}"}))
    assert execution.status == "failed"
    assert "http" in execution.error
    assert not target.requests


def test_http_error_status_fails_the_node(user, target):
    target.enqueue(Behaviour(status=404))
    execution = run_graph(http_graph(user, {"url": target.url + "/missing?q={q}"}))
    assert execution.status == "failed"
    assert "404" in execution.error


def test_http_cancel_closes_the_connection(user, target):
    graph = http_graph(user, {"url": target.url + "/slow?q={q}"})
    execution = execution_create(user=user, graph=graph, inputs={})
    deadline = time.monotonic() + 5
    while not target.requests:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    started = time.monotonic()
    execution_cancel(execution=execution)
    execution = wait_for(execution)
    assert time.monotonic() - started < 1.0
    assert execution.status == "cancelled"
    assert target.wait_for_idle(timeout=1.0)


def test_http_get_cache_only_when_turned_on(user, target):
    plain = http_graph(user, {"url": target.url + "/a?q={q}"})
    run_graph(plain)
    run_graph(plain)
    assert len(target.requests) == 2
    cached = http_graph(user, {"url": target.url + "/b?q={q}", "cache": True})
    run_graph(cached)
    second = run_graph(cached)
    assert len(target.requests) == 3
    assert runs_by_key(cached, second)["http"].status == "cached"
    assert Execution.objects.filter(status="succeeded").count() == 4


def test_nul_characters_in_outputs_are_stored_on_every_database(user, target):
    execution = run_graph(http_graph(user, {"url": target.url + "/nul?q={q}"}))
    assert execution.status == "succeeded", execution.error
    assert execution.outputs["body"] == "bin\ufffdary"


def test_outputs_over_the_size_limit_fail_the_node(user, ollama, settings):
    settings.WORKFLOW_MAX_OUTPUT_BYTES = 40
    execution = run_graph(llm_graph(user))
    assert execution.status == "failed"
    assert "exceeded the size limit of 40 bytes" in execution.error
    graph = build_graph(user, {"t": ("text", {"text": "x" * 50})})
    execution = run_graph(graph)
    assert execution.status == "failed"
    assert "more than the limit of 40 bytes" in execution.error


def test_held_back_tokens_go_out_when_the_model_pauses(user, ollama):
    # A burst of five tokens within the 20 ms window, then the model stalls.
    ollama.enqueue(
        Behaviour(reply="a b c d e f g", token_interval=0.001, stall_after=5, stall_for=3),
        path="/api/chat",
    )
    graph = llm_graph(user)
    texts = []
    execution = execution_create(user=user, graph=graph, inputs={})
    with listen(
        execution_topic(execution.id),
        lambda m: m["event"] == "node.token" and texts.append(m["data"]["text"]),
    ):
        deadline = time.monotonic() + 5
        while "".join(texts) != "a b c d e" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "".join(texts) == "a b c d e"  # all of the burst, during the stall
        execution_cancel(execution=execution)
        wait_for(execution)


def test_a_stalled_llm_call_times_out_and_its_connection_is_closed(user, ollama, settings):
    settings.WORKFLOW_NODE_TIMEOUT = 0.6
    ollama.enqueue(Behaviour(stall_after=2, stall_for=10), path="/api/chat")
    started = time.monotonic()
    execution = run_graph(llm_graph(user))
    assert time.monotonic() - started < 2.5
    assert execution.status == "failed"
    assert "timed out after 0.6 s" in execution.error
    assert ollama.wait_for_idle(timeout=1.0)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's pool: PostgreSQL only")
def test_runs_waiting_on_their_llm_replies_hold_no_database_connection(user, ollama):
    # Each run's coordinator and LLM node thread used to keep a pooled connection while the
    # reply streamed: eleven waiting runs took the default pool of 20, and the next request
    # timed out (503). Now they give it back while they wait.
    pool = connection.pool
    for _ in range(4):
        ollama.enqueue(Behaviour(first_token_delay=2), path="/api/chat")
    graph = llm_graph(user)
    connection.close()  # this thread's own connection is not counted below
    before = pool.get_stats()
    held_before = before["pool_size"] - before["pool_available"]
    executions = [execution_create(user=user, graph=graph, inputs={}) for _ in range(4)]
    connection.close()
    deadline = time.monotonic() + 10
    while len(chat_requests(ollama)) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(chat_requests(ollama)) == 4, "the LLM calls did not start"
    time.sleep(0.3)  # each coordinator is back in its wait
    stats = pool.get_stats()
    # At most the process's cancel watcher's one, which polls the four runs' flags.
    assert stats["pool_size"] - stats["pool_available"] <= held_before + 1
    for execution in executions:
        assert wait_for(execution).status == "succeeded"
