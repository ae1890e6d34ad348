"""The fakes are faithful: the official ``ollama`` and ``groq`` SDKs work against them.

If a fake drifted from the public API (framing, content types, error bodies, headers), the
SDKs, which are written against the real services, would fail here.
"""

import groq
import ollama
import pytest
import requests

from tests.fakes import fixtures
from tests.fakes.base import Behaviour
from tests.fakes.groq import TEST_KEY

fake_ollama = fixtures.fake_ollama
fake_groq = fixtures.fake_groq

# --- Ollama -----------------------------------------------------------------------------------


@pytest.fixture
def ollama_sdk(fake_ollama):
    return ollama.Client(host=fake_ollama.url)


def test_ollama_sdk_chat(ollama_sdk, fake_ollama):
    response = ollama_sdk.chat(
        model="llama3.2", messages=[{"role": "user", "content": "why is the sky blue?"}]
    )
    assert response.message.role == "assistant"
    assert response.message.content == fake_ollama.reply
    assert response.done is True
    assert response.done_reason == "stop"
    assert response.eval_count == len(fake_ollama.reply.split())
    assert response.prompt_eval_count == 5
    assert fake_ollama.requests[-1].json()["stream"] is False


def test_ollama_sdk_chat_stream(ollama_sdk, fake_ollama):
    parts = list(
        ollama_sdk.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert "".join(p.message.content for p in parts) == fake_ollama.reply
    assert [p.done for p in parts].count(True) == 1
    assert parts[-1].done
    assert parts[-1].eval_count == len(parts) - 1


def test_ollama_sdk_generate_and_stream(ollama_sdk, fake_ollama):
    assert ollama_sdk.generate(model="llama3.2", prompt="hi").response == fake_ollama.reply
    parts = list(ollama_sdk.generate(model="llama3.2", prompt="hi", stream=True))
    assert "".join(p.response for p in parts) == fake_ollama.reply
    assert parts[-1].context == [1, 2, 3]


def test_ollama_sdk_models_show_embed_version(ollama_sdk, fake_ollama):
    listed = ollama_sdk.list()
    assert [m.model for m in listed.models] == ["llama3.2:latest", "all-minilm:latest"]
    assert listed.models[0].details.parameter_size == "3.2B"
    shown = ollama_sdk.show("llama3.2")
    assert shown.details.family == "llama"
    assert "completion" in shown.capabilities
    embedded = ollama_sdk.embed(model="all-minilm", input=["a", "bb"])
    assert len(embedded.embeddings) == 2
    assert requests.get(f"{fake_ollama.url}/api/version", timeout=5).json() == {
        "version": fake_ollama.version
    }


def test_ollama_sdk_tool_call_arguments_are_an_object(ollama_sdk):
    tool = {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
    response = ollama_sdk.chat(
        model="llama3.2", messages=[{"role": "user", "content": "Paris?"}], tools=[tool]
    )
    call = response.message.tool_calls[0]
    assert call.function.name == "get_current_weather"
    assert call.function.arguments == {"location": "Paris, FR"}


def test_ollama_sdk_unknown_model_is_404(ollama_sdk):
    with pytest.raises(ollama.ResponseError) as info:
        ollama_sdk.chat(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 404
    assert info.value.error == "model 'nope' not found"


@pytest.mark.parametrize("status", [400, 500, 503])
def test_ollama_sdk_error_statuses(ollama_sdk, fake_ollama, status):
    fake_ollama.enqueue(Behaviour(status=status, error="boom"))
    with pytest.raises(ollama.ResponseError) as info:
        ollama_sdk.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == status
    assert info.value.error == "boom"


def test_ollama_sdk_sees_an_error_inside_a_200_stream(ollama_sdk, fake_ollama):
    fake_ollama.enqueue(Behaviour(error_after=2, error="an error was encountered"))
    stream = ollama_sdk.chat(
        model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(ollama.ResponseError, match="an error was encountered"):
        list(stream)


def test_ollama_stream_wire_format(fake_ollama):
    response = requests.post(
        f"{fake_ollama.url}/api/chat",
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]},
        stream=True,
        timeout=5,
    )
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["Transfer-Encoding"] == "chunked"
    lines = response.content.split(b"\n")
    assert lines[-1] == b""  # every object ends with a newline
    assert all(line.startswith(b'{"model": "llama3.2"') for line in lines[:-1])


# --- Groq -------------------------------------------------------------------------------------


@pytest.fixture
def groq_sdk(fake_groq):
    # The SDK's base URL is the host; it adds /openai/v1 itself. No SDK retries here.
    return groq.Groq(api_key=TEST_KEY, base_url=fake_groq.url, max_retries=0)


def test_groq_sdk_chat(groq_sdk, fake_groq):
    completion = groq_sdk.chat.completions.create(
        model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "hi there"}]
    )
    assert completion.choices[0].message.content == fake_groq.reply
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 2
    assert completion.usage.completion_tokens == len(fake_groq.reply.split())
    assert completion.x_groq.id.startswith("req_")
    request = fake_groq.requests[-1]
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {TEST_KEY}"


def test_groq_sdk_chat_stream(groq_sdk, fake_groq):
    chunks = list(
        groq_sdk.chat.completions.create(
            model="llama-3.3-70b-versatile",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == fake_groq.reply
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].x_groq.usage.completion_tokens == len(fake_groq.reply.split())


def test_groq_sdk_raw_headers(groq_sdk):
    raw = groq_sdk.chat.completions.with_raw_response.create(
        model="llama-3.1-8b-instant", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == "14399"
    assert raw.headers["content-type"].startswith("application/json")


def test_groq_sdk_tool_call_arguments_are_a_string(groq_sdk):
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
    completion = groq_sdk.chat.completions.create(
        model="llama-3.3-70b-versatile",
        messages=[{"role": "user", "content": "Paris?"}],
        tools=[tool],
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.arguments == '{"location": "Paris, FR"}'


def test_groq_sdk_models(groq_sdk):
    ids = [m.id for m in groq_sdk.models.list().data]
    assert ids == ["llama-3.3-70b-versatile", "llama-3.1-8b-instant", "whisper-large-v3"]


def test_groq_sdk_invalid_key(fake_groq):
    client = groq.Groq(api_key="gsk_wrong", base_url=fake_groq.url, max_retries=0)
    with pytest.raises(groq.AuthenticationError) as info:
        client.models.list()
    assert info.value.status_code == 401
    assert info.value.body["error"]["code"] == "invalid_api_key"


def test_groq_sdk_unknown_model(groq_sdk):
    with pytest.raises(groq.NotFoundError) as info:
        groq_sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"]["code"] == "model_not_found"
    assert "`nope`" in info.value.body["error"]["message"]


def test_groq_sdk_rate_limited(groq_sdk, fake_groq):
    fake_groq.enqueue(Behaviour(status=429, headers={"retry-after": "7"}))
    with pytest.raises(groq.RateLimitError) as info:
        groq_sdk.chat.completions.create(
            model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.body["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(498, groq.APIStatusError), (500, groq.InternalServerError), (503, groq.InternalServerError)],
)
def test_groq_sdk_error_statuses(groq_sdk, fake_groq, status, error_class):
    fake_groq.enqueue(Behaviour(status=status))
    with pytest.raises(error_class) as info:
        groq_sdk.chat.completions.create(
            model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == status


def test_groq_sdk_retries_a_503_then_succeeds(fake_groq):
    fake_groq.enqueue(Behaviour(status=503, headers={"retry-after": "0"}))
    client = groq.Groq(api_key=TEST_KEY, base_url=fake_groq.url, max_retries=1)
    completion = client.chat.completions.create(
        model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "x"}]
    )
    assert completion.choices[0].message.content == fake_groq.reply
    assert len(fake_groq.requests) == 2


def test_groq_sdk_sees_an_error_event_inside_a_stream(groq_sdk, fake_groq):
    fake_groq.enqueue(Behaviour(error_after=1, error="model crashed"))
    stream = groq_sdk.chat.completions.create(
        model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(groq.APIError, match="model crashed"):
        list(stream)


def test_groq_sdk_accepts_a_cut_stream_silently(groq_sdk, fake_groq):
    """Why our client checks terminators: the SDK returns half an answer without complaint."""
    fake_groq.enqueue(Behaviour(omit_terminator=True))
    chunks = list(
        groq_sdk.chat.completions.create(
            model="llama-3.3-70b-versatile",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
        )
    )
    assert all(c.choices[0].finish_reason is None for c in chunks)


def test_groq_stream_wire_format(fake_groq):
    response = requests.post(
        f"{fake_groq.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        json={
            "model": "llama-3.1-8b-instant",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
        },
        stream=True,
        timeout=5,
    )
    assert response.headers["Content-Type"] == "text/event-stream"
    body = response.content
    assert body.endswith(b"data: [DONE]\n\n")
    events = body.split(b"\n\n")[:-1]
    assert all(e.startswith(b"data: ") for e in events)
