"""Our Groq client against the fake Groq server: every documented behaviour."""

import json
import threading
import time
import zlib

import pytest

from integrations.completions import Usage
from integrations.errors import (
    AuthError,
    Cancelled,
    NotFound,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Unavailable,
)
from integrations.groq import GroqClient, RateLimits, parse_reset
from tests.fakes import fixtures
from tests.fakes.base import Behaviour
from tests.fakes.groq import TEST_KEY
from tests.integrations import reading
from tests.integrations.reading import text_of

fake_groq = fixtures.fake_groq
read = reading.read
MODEL = "llama-3.3-70b-versatile"
HI = [{"role": "user", "content": "say something fast"}]


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(fake_groq, sleeps):
    client = GroqClient(api_key=TEST_KEY, base_url=fake_groq.base_url, sleep=sleeps.append)
    yield client
    client.close()


def chat_requests(fake):
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


def test_chat_sends_bearer_key_under_the_base_path(client, fake_groq):
    result = client.chat(model=MODEL, messages=HI, temperature=0, max_tokens=32, seed=3)
    assert result.text == fake_groq.reply
    request = fake_groq.requests[-1]
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {TEST_KEY}"
    assert request.json() == {
        "model": MODEL,
        "messages": HI,
        "stream": False,
        "temperature": 0,
        "max_completion_tokens": 32,
        "seed": 3,
    }
    assert result.usage.prompt_tokens == 3
    assert result.usage.completion_tokens == 4
    assert result.usage.total_tokens == 7
    assert result.usage.finish_reason == "stop"
    assert result.usage.request_id.startswith("req_")


def test_chat_stream_text_then_usage_from_x_groq(client, fake_groq, read):
    *texts, usage = read(client.chat_stream(model=MODEL, messages=HI))
    assert "".join(texts) == fake_groq.reply
    assert isinstance(usage, Usage)
    assert usage.completion_tokens == len(texts)
    assert usage.metrics["queue_time"] == 0.0123
    assert usage.metrics["rate_limits"]["remaining_tokens"] == 5990
    assert chat_requests(fake_groq)[-1].json()["stream"] is True


def test_json_mode_is_response_format(client, fake_groq):
    client.chat(model=MODEL, messages=HI, json=True)
    assert chat_requests(fake_groq)[-1].json()["response_format"] == {"type": "json_object"}


def test_tool_call_arguments_stay_a_json_string(client, read):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    result = client.chat(model=MODEL, messages=HI, tools=tools)
    assert result.usage.finish_reason == "tool_calls"
    assert result.tool_calls[0]["function"]["arguments"] == '{"location": "Paris, FR"}'
    usage = read(client.chat_stream(model=MODEL, messages=HI, tools=tools))[-1]
    call = usage.tool_calls[0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"location": "Paris, FR"}'}
    assert json.loads(call["function"]["arguments"]) == {"location": "Paris, FR"}


def test_models_mark_the_chat_capable_ones(client):
    models = {m["id"]: m for m in client.models()}
    assert models["llama-3.3-70b-versatile"]["chat"] is True
    assert models["whisper-large-v3"]["chat"] is False
    assert models["llama-3.1-8b-instant"]["context_window"] == 131072


def test_rate_limit_headers_are_parsed(client):
    client.chat(model=MODEL, messages=HI)
    assert client.rate_limits == RateLimits(
        limit_requests=14400,
        limit_tokens=6000,
        remaining_requests=14399,
        remaining_tokens=5990,
        reset_requests=6.0,
        reset_tokens=0.1,
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2m59.56s", 179.56), ("7.66s", 7.66), ("120ms", 0.12), ("1h2m", 3720.0), ("3", 3.0)],
)
def test_reset_durations(value, seconds):
    assert parse_reset(value) == pytest.approx(seconds)


def test_invalid_key_is_auth_error_without_the_key(fake_groq, sleeps):
    secret = "gsk_" + "w" * 52
    client = GroqClient(api_key=secret, base_url=fake_groq.base_url, sleep=sleeps.append)
    with pytest.raises(AuthError) as info:
        client.chat(model=MODEL, messages=HI)
    assert info.value.status == 401
    assert info.value.message == "Invalid API Key"
    assert info.value.request_id.startswith("req_")
    assert secret not in str(info.value)
    assert secret not in repr(client)
    assert sleeps == []


def test_missing_key_is_refused_before_any_request(fake_groq):
    with pytest.raises(AuthError):
        GroqClient(api_key="", base_url=fake_groq.base_url)
    assert fake_groq.requests == []


def test_unknown_model_is_not_found(client):
    with pytest.raises(NotFound, match="`nope` does not exist") as info:
        client.chat_stream(model="nope", messages=HI)
    assert info.value.request_id.startswith("req_")


def test_429_beyond_the_cap_is_rate_limited_with_retry_after(client, fake_groq, sleeps):
    fake_groq.enqueue(Behaviour(status=429, headers={"retry-after": "300"}))
    with pytest.raises(RateLimited) as info:
        client.chat(model=MODEL, messages=HI)
    assert info.value.retry_after == 300.0
    assert info.value.request_id.startswith("req_")
    assert "Rate limit reached" in info.value.message
    assert sleeps == []
    assert len(chat_requests(fake_groq)) == 1


def test_429_within_the_cap_waits_then_succeeds(client, fake_groq, sleeps):
    fake_groq.enqueue(Behaviour(status=429, headers={"retry-after": "2"}))
    assert client.chat(model=MODEL, messages=HI).text == fake_groq.reply
    assert sleeps == [2.0]


def test_413_rate_limit_is_rate_limited_and_not_retried(client, fake_groq, sleeps):
    fake_groq.enqueue(Behaviour(status=413))
    with pytest.raises(RateLimited):
        client.chat(model=MODEL, messages=HI)
    assert len(chat_requests(fake_groq)) == 1


def test_498_capacity_exceeded_is_unavailable_and_not_retried(client, fake_groq, sleeps):
    fake_groq.enqueue(Behaviour(status=498))
    with pytest.raises(Unavailable) as info:
        client.chat(model=MODEL, messages=HI)
    assert info.value.status == 498
    assert len(chat_requests(fake_groq)) == 1


def test_5xx_is_a_provider_error_after_retries(client, fake_groq, sleeps):
    fake_groq.enqueue(*[Behaviour(status=500)] * 3)
    with pytest.raises(ProviderError) as info:
        client.chat_stream(model=MODEL, messages=HI)
    assert len(chat_requests(fake_groq)) == 3
    assert len(sleeps) == 2
    assert info.value.status == 500
    assert info.value.request_id.startswith("req_")


def test_5xx_then_success(client, fake_groq, sleeps, read):
    fake_groq.enqueue(Behaviour(status=503))
    assert read(client.chat_stream(model=MODEL, messages=HI))[-1].finish_reason == "stop"
    assert len(sleeps) == 1


def test_error_event_inside_the_stream(client, fake_groq, read):
    fake_groq.enqueue(Behaviour(error_after=2, error="model crashed"))
    received = []
    with pytest.raises(ProviderError, match="model crashed") as info:
        read(client.chat_stream(model=MODEL, messages=HI), received)
    assert received == ["Fast", " inference"]
    assert info.value.request_id.startswith("req_")


def test_stream_cut_without_done_is_an_interruption_not_half_an_answer(client, fake_groq, read):
    fake_groq.enqueue(Behaviour(omit_terminator=True))
    with pytest.raises(StreamInterrupted, match=r"\[DONE\]") as info:
        read(client.chat_stream(model=MODEL, messages=HI))
    assert info.value.retryable


def sse_chunk(delta: dict, finish_reason=None, **extra) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return b"data: " + json.dumps({"choices": [choice], **extra}).encode() + b"\n\n"


def test_done_without_finish_reason_is_an_interruption(client, fake_groq, read):
    fake_groq.enqueue(Behaviour(raw_stream=sse_chunk({"content": "half"}) + b"data: [DONE]\n\n"))
    with pytest.raises(StreamInterrupted):
        read(client.chat_stream(model=MODEL, messages=HI))


def test_comments_blank_lines_and_multiline_data_in_a_real_stream(client, fake_groq, read):
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    body = (
        b": keep-alive\n\n\n"
        + sse_chunk({"content": "Hel"})
        + b'data: {"choices": [{"index": 0,\r\ndata: "delta": {"content": "lo"}}]}\r\n\r\n'
        + b": ping\n"
        + sse_chunk({}, "stop", x_groq={"id": "req_raw", "usage": usage})
        + b"data: [DONE]\n\n"
    )
    fake_groq.enqueue(Behaviour(raw_stream=body, byte_by_byte=True))
    *texts, final = read(client.chat_stream(model=MODEL, messages=HI))
    assert texts == ["Hel", "lo"]
    assert (final.prompt_tokens, final.completion_tokens, final.total_tokens) == (1, 2, 3)


def test_dropped_connection_is_an_interruption(client, fake_groq, read):
    fake_groq.enqueue(Behaviour(drop_after=1))
    with pytest.raises(StreamInterrupted):
        read(client.chat_stream(model=MODEL, messages=HI))


def test_stall_past_the_read_timeout(fake_groq, read):
    fake_groq.enqueue(Behaviour(stall_after=1))
    client = GroqClient(api_key=TEST_KEY, base_url=fake_groq.base_url, read_timeout=0.3)
    with pytest.raises(StreamInterrupted, match="stalled"):
        read(client.chat_stream(model=MODEL, messages=HI))


def test_multibyte_utf8_split_across_reads(client, fake_groq, read):
    reply = "ça va? 日本語 — 🎉🚀 done"
    fake_groq.enqueue(Behaviour(reply=reply, byte_by_byte=True))
    assert text_of(read(client.chat_stream(model=MODEL, messages=HI))) == reply


def test_streams_reuse_the_connection_and_early_close_drops_it(client, fake_groq):
    list(client.chat_stream(model=MODEL, messages=HI))
    list(client.chat_stream(model=MODEL, messages=HI))
    assert fake_groq.total_connections == 1
    fake_groq.enqueue(Behaviour(token_interval=0.05))
    for _item in client.chat_stream(model=MODEL, messages=HI):
        break
    assert fake_groq.wait_for_idle(timeout=3)
    assert client.chat(model=MODEL, messages=HI).text == fake_groq.reply
    assert fake_groq.total_connections == 2


def test_cancel_from_another_thread_within_a_second(fake_groq, read):
    fake_groq.enqueue(Behaviour(token_interval=5))
    client = GroqClient(api_key=TEST_KEY, base_url=fake_groq.base_url, read_timeout=60)
    stream = client.chat_stream(model=MODEL, messages=HI)
    threading.Timer(0.3, stream.cancel).start()
    received = []
    started = time.monotonic()
    with pytest.raises(Cancelled):
        read(stream, received)
    assert time.monotonic() - started < 1.0
    assert received == ["Fast"]
    assert fake_groq.wait_for_idle(timeout=3)


def test_client_cancel_during_a_stream_is_cancelled_not_interrupted(fake_groq, read):
    # The engine may call client.close()/cancel() before stream.cancel(): still a cancel.
    fake_groq.enqueue(Behaviour(token_interval=5))
    client = GroqClient(api_key=TEST_KEY, base_url=fake_groq.base_url, read_timeout=60)
    stream = client.chat_stream(model=MODEL, messages=HI)
    threading.Timer(0.3, client.close).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        read(stream)
    assert time.monotonic() - started < 1.0


def test_gzip_encoded_stream_is_decoded_as_it_arrives(client, fake_groq, read):
    # requests asks for gzip by default; a proxy or CDN may compress an event stream.
    plain = (
        sse_chunk({"content": "squeezed"})
        + sse_chunk({"content": " ✓"}, "stop", x_groq={"usage": {"completion_tokens": 2}})
        + b"data: [DONE]\n\n"
    )
    compressor = zlib.compressobj(wbits=31)  # gzip framing
    body = compressor.compress(plain) + compressor.flush()
    fake_groq.enqueue(
        Behaviour(raw_stream=body, byte_by_byte=True, headers={"Content-Encoding": "gzip"})
    )
    *texts, usage = read(client.chat_stream(model=MODEL, messages=HI))
    assert "".join(texts) == "squeezed ✓"
    assert usage.completion_tokens == 2
