"""Our Ollama client against the fake Ollama server: every documented behaviour."""

import json
import threading
import time

import pytest

from integrations.completions import Usage
from integrations.errors import (
    Cancelled,
    NotFound,
    ProviderError,
    StreamInterrupted,
    Unavailable,
)
from integrations.ollama import OllamaClient
from tests.fakes import fixtures
from tests.fakes.base import Behaviour
from tests.integrations import reading
from tests.integrations.reading import text_of

fake_ollama = fixtures.fake_ollama
read = reading.read
HI = [{"role": "user", "content": "why is the sky blue?"}]


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(fake_ollama, sleeps):
    client = OllamaClient(base_url=fake_ollama.url, sleep=sleeps.append, read_timeout=5)
    yield client
    client.close()


def last_body(fake):
    return fake.requests[-1].json()


def test_chat_returns_text_and_usage(client, fake_ollama):
    result = client.chat(model="llama3.2", messages=HI)
    assert result.text == fake_ollama.reply
    assert result.usage.prompt_tokens == 5
    assert result.usage.completion_tokens == 8
    assert result.usage.total_tokens == 13
    assert result.usage.finish_reason == "stop"
    assert result.usage.metrics["eval_duration"] > 0  # nanoseconds, passed through
    assert last_body(fake_ollama)["stream"] is False


def test_chat_stream_yields_text_chunks_then_one_usage(client, fake_ollama, read):
    items = read(client.chat_stream(model="llama3.2", messages=HI))
    *texts, usage = items
    assert all(isinstance(t, str) for t in texts)
    assert "".join(texts) == fake_ollama.reply
    assert isinstance(usage, Usage)
    assert usage.completion_tokens == len(texts)
    assert usage.model == "llama3.2"
    assert last_body(fake_ollama)["stream"] is True


def test_stream_collect_and_attributes(client, fake_ollama):
    stream = client.chat_stream(model="llama3.2", messages=HI)
    result = stream.collect()
    assert result.text == stream.text == fake_ollama.reply
    assert result.usage is stream.usage
    with pytest.raises(RuntimeError):
        list(stream)


def test_neutral_knobs_map_to_options_and_passthrough_fields(client, fake_ollama):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    client.chat(
        model="llama3.2",
        messages=HI,
        temperature=0,
        max_tokens=64,
        seed=7,
        options={"num_ctx": 4096},
        format=schema,
        keep_alive="10m",
        think=False,
        tools=tools,
    )
    body = last_body(fake_ollama)
    assert body["options"] == {"temperature": 0, "num_predict": 64, "seed": 7, "num_ctx": 4096}
    assert body["format"] == schema
    assert body["keep_alive"] == "10m"
    assert body["think"] is False
    assert body["tools"] == tools


def test_json_mode_sends_format_json(client, fake_ollama):
    result = client.chat(model="llama3.2", messages=HI, json=True)
    assert last_body(fake_ollama)["format"] == "json"
    assert result.text == '{"answer": "blue"}'


def test_tool_call_arguments_stay_an_object(client, read):
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    result = client.chat(model="llama3.2", messages=HI, tools=tools)
    assert result.tool_calls == [
        {"function": {"name": "weather", "arguments": {"location": "Paris, FR"}}}
    ]
    usage = read(client.chat_stream(model="llama3.2", messages=HI, tools=tools))[-1]
    assert usage.tool_calls[0]["function"]["arguments"] == {"location": "Paris, FR"}


def test_generate_both_ways(client, fake_ollama):
    assert client.generate(model="llama3.2", prompt="sky?").text == fake_ollama.reply
    items = list(client.generate_stream(model="llama3.2", prompt="sky?", temperature=0.2))
    assert "".join(items[:-1]) == fake_ollama.reply
    body = last_body(fake_ollama)
    assert body == {
        "model": "llama3.2",
        "stream": True,
        "options": {"temperature": 0.2},
        "prompt": "sky?",
    }


def test_models_show_embed_version(client):
    assert [m["name"] for m in client.tags()] == ["llama3.2:latest", "all-minilm:latest"]
    assert client.show(model="llama3.2")["details"]["family"] == "llama"
    assert len(client.embed(model="all-minilm", input=["a", "b"])) == 2
    assert client.version() == "0.6.5"


def test_unknown_model_names_it_and_suggests_pull(client):
    with pytest.raises(NotFound) as info:
        client.chat(model="mistral:7b", messages=HI)
    assert info.value.status == 404
    assert "model 'mistral:7b' not found" in info.value.message
    assert "ollama pull mistral:7b" in info.value.message
    with pytest.raises(NotFound, match="ollama pull mistral"):
        client.chat_stream(model="mistral", messages=HI)


def test_unreachable_explains_the_setting_and_docker(sleeps):
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OllamaClient(base_url=f"http://127.0.0.1:{port}", sleep=sleeps.append)
    with pytest.raises(Unavailable) as info:
        client.version()
    message = info.value.message
    assert f"OLLAMA_BASE_URL=http://127.0.0.1:{port}" in message
    assert "ollama serve" in message
    assert "host.docker.internal" in message
    assert info.value.retryable


def test_5xx_then_success_is_retried_by_the_adapter(client, fake_ollama, sleeps, read):
    fake_ollama.enqueue(Behaviour(status=500, error="loading model failed"))
    items = read(client.chat_stream(model="llama3.2", messages=HI))
    assert isinstance(items[-1], Usage)
    assert len(sleeps) == 1
    assert len([r for r in fake_ollama.requests if r.path == "/api/chat"]) == 2


def test_error_line_inside_a_200_stream(client, fake_ollama, read):
    fake_ollama.enqueue(Behaviour(error_after=3, error="an error was encountered while running"))
    stream = client.chat_stream(model="llama3.2", messages=HI)
    received = []
    with pytest.raises(ProviderError) as info:
        read(stream, received)
    assert received == ["The", " sky", " is"]
    assert info.value.message == "an error was encountered while running"
    assert info.value.status == 200
    assert info.value.retryable


def test_stream_without_done_is_a_retryable_interruption(client, fake_ollama, read):
    fake_ollama.enqueue(Behaviour(omit_terminator=True))
    with pytest.raises(StreamInterrupted, match="done: true") as info:
        read(client.chat_stream(model="llama3.2", messages=HI))
    assert info.value.retryable


def test_dropped_connection_is_a_retryable_interruption(client, fake_ollama, read):
    fake_ollama.enqueue(Behaviour(drop_after=2))
    with pytest.raises(StreamInterrupted) as info:
        read(client.chat_stream(model="llama3.2", messages=HI))
    assert info.value.retryable


def test_stall_past_the_read_timeout_is_a_retryable_interruption(fake_ollama, read):
    fake_ollama.enqueue(Behaviour(stall_after=2, stall_for=10))
    client = OllamaClient(base_url=fake_ollama.url, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(StreamInterrupted, match="stalled past the read timeout") as info:
        read(client.chat_stream(model="llama3.2", messages=HI))
    assert time.monotonic() - started < 3
    assert info.value.retryable


def test_slow_first_token_within_the_read_timeout_is_fine(fake_ollama, read):
    fake_ollama.enqueue(Behaviour(first_token_delay=0.4))
    client = OllamaClient(base_url=fake_ollama.url, read_timeout=2)
    assert text_of(read(client.chat_stream(model="llama3.2", messages=HI))) == fake_ollama.reply


def test_multibyte_utf8_split_across_reads(client, fake_ollama, read):
    reply = "héllo wörld 日本語の空 🎉🎉 ok"
    fake_ollama.enqueue(Behaviour(reply=reply, byte_by_byte=True))
    assert text_of(read(client.chat_stream(model="llama3.2", messages=HI))) == reply


def test_completed_streams_reuse_one_connection(client, fake_ollama):
    for _ in range(3):
        list(client.chat_stream(model="llama3.2", messages=HI))
    assert fake_ollama.total_connections == 1


def test_early_close_closes_the_connection_instead_of_pooling_it(client, fake_ollama):
    fake_ollama.enqueue(Behaviour(token_interval=0.05))
    stream = client.chat_stream(model="llama3.2", messages=HI)
    for _item in stream:
        break  # the consumer stops after the first chunk
    assert fake_ollama.wait_for_idle(timeout=3), "the half-read connection was kept open"
    # The next request opens a fresh connection rather than reading the leftover tokens.
    assert client.chat(model="llama3.2", messages=HI).text == fake_ollama.reply
    assert fake_ollama.total_connections == 2


def cancel_later(stream, delay):
    timer = threading.Timer(delay, stream.cancel)
    timer.start()
    return timer


def test_cancel_from_another_thread_interrupts_a_stalled_read(fake_ollama, read):
    fake_ollama.enqueue(Behaviour(stall_after=1, stall_for=30))
    client = OllamaClient(base_url=fake_ollama.url, read_timeout=60)
    stream = client.chat_stream(model="llama3.2", messages=HI)
    received = []
    cancel_later(stream, 0.3)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        read(stream, received)
    assert time.monotonic() - started < 1.0
    assert received == ["The"]
    assert fake_ollama.wait_for_idle(timeout=3)


def test_cancel_during_a_slow_first_token(fake_ollama, read):
    fake_ollama.enqueue(Behaviour(first_token_delay=30))
    client = OllamaClient(base_url=fake_ollama.url, read_timeout=60)
    stream = client.chat_stream(model="llama3.2", messages=HI)
    cancel_later(stream, 0.2)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        read(stream)
    assert time.monotonic() - started < 1.0


def test_cancel_after_completion_is_harmless(client, fake_ollama, read):
    stream = client.chat_stream(model="llama3.2", messages=HI)
    read(stream)
    stream.cancel()
    # The pooled connection was not shut down under the next request. (A pumped stream's
    # connection is never pooled: it was switched to non-blocking under http.client.)
    assert client.chat(model="llama3.2", messages=HI).text == fake_ollama.reply
    assert fake_ollama.total_connections == (1 if read.mode == "iterated" else 2)


def test_blank_lines_and_crlf_in_a_real_ndjson_stream(client, fake_ollama, read):
    lines = [
        b'{"model":"llama3.2","message":{"role":"assistant","content":"d\xc3\xa9j"},"done":false}',
        b"",
        b'{"model":"llama3.2","message":{"role":"assistant","content":"\xc3\xa0 vu"},"done":false}',
        b'{"model":"llama3.2","message":{"role":"assistant","content":""},"done":true,'
        b'"done_reason":"length","eval_count":2,"prompt_eval_count":4}',
    ]
    fake_ollama.enqueue(Behaviour(raw_stream=b"\r\n".join(lines) + b"\r\n", byte_by_byte=True))
    *texts, usage = read(client.chat_stream(model="llama3.2", messages=HI))
    assert "".join(texts) == "déjà vu"
    assert usage.finish_reason == "length"
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 2)


def test_client_cancel_while_the_model_loads(fake_ollama):
    # Ollama sends no headers until the model is loaded: nothing to read yet, still cancellable.
    fake_ollama.enqueue(Behaviour(delay=30))
    client = OllamaClient(base_url=fake_ollama.url, read_timeout=300)
    threading.Timer(0.3, client.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        client.chat_stream(model="llama3.2", messages=HI)
    assert time.monotonic() - started < 1.0


def test_thinking_is_kept_apart_from_the_answer(client, fake_ollama, read):
    def line(content, thinking="", done=False):
        message = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        obj = {"model": "llama3.2", "message": message, "done": done}
        if done:
            obj.update(done_reason="stop", eval_count=2, prompt_eval_count=1)
        return (json.dumps(obj) + "\n").encode()

    body = line("", "Let me ") + line("", "think.") + line("Blue") + line(".", done=True)
    fake_ollama.enqueue(Behaviour(raw_stream=body))
    *texts, usage = read(client.chat_stream(model="llama3.2", messages=HI, think=True))
    assert "".join(texts) == "Blue."
    assert usage.metrics["thinking"] == "Let me think."
    assert last_body(fake_ollama)["think"] is True


def test_body_held_open_after_done_does_not_hold_the_caller(fake_ollama, monkeypatch, read):
    from integrations import streaming

    monkeypatch.setattr(streaming, "DRAIN_TIMEOUT", 0.2)
    # A server that sends done: true and then keeps the chunked body open.
    fake_ollama.enqueue(Behaviour(stall_after=99, stall_for=10, reply="a b"))

    def held_open(handler, request, behaviour):
        handler.start_chunked(200, "application/x-ndjson")
        done = {"model": "llama3.2", "message": {"role": "assistant", "content": "hi"}}
        handler.write_chunk(
            (json.dumps({**done, "done": True, "done_reason": "stop"}) + "\n").encode()
        )
        handler.stall(behaviour)

    monkeypatch.setattr(fake_ollama, "handle", held_open)
    client = OllamaClient(base_url=fake_ollama.url, read_timeout=30)
    started = time.monotonic()
    items = read(client.chat_stream(model="llama3.2", messages=HI))
    assert items[0] == "hi"
    assert time.monotonic() - started < 2
    assert fake_ollama.wait_for_idle(timeout=3)  # that connection was not pooled


def test_final_line_without_its_newline_still_completes(client, fake_ollama, read):
    body = (
        b'{"model":"llama3.2","message":{"role":"assistant","content":"ok"},"done":false}\n'
        b'{"model":"llama3.2","message":{"role":"assistant","content":""},"done":true,'
        b'"done_reason":"stop","eval_count":1}'
    )
    fake_ollama.enqueue(Behaviour(raw_stream=body))
    *texts, usage = read(client.chat_stream(model="llama3.2", messages=HI))
    assert texts == ["ok"]
    assert usage.completion_tokens == 1
