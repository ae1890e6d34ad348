"""Ollama client: ``/api/chat``, ``/api/generate``, ``/api/tags``, ``/api/show``, ``/api/embed``,
``/api/version`` (ollama/ollama docs/api.md).

Interface (what the engine's ``llm`` node and chat call)::

    client = OllamaClient()                     # OLLAMA_BASE_URL; or OllamaClient(base_url=...)
    stream = client.chat_stream(model="llama3.2", messages=[{"role": "user", "content": "hi"}],
                                temperature=0, max_tokens=256, seed=1, json=False)
    for item in stream:        # str text chunks ..., then exactly one Usage as the last item
        ...
    stream.cancel()            # from another thread; the reader gets errors.Cancelled
    result = client.chat(model=..., messages=...)   # ChatResult(text, usage)

``Usage``: ``prompt_tokens`` (``prompt_eval_count``), ``completion_tokens`` (``eval_count``),
``finish_reason`` (``done_reason``), ``tool_calls`` (arguments are objects, as Ollama sends
them) and ``metrics`` (the durations in nanoseconds; with ``think=True`` the model's reasoning
as ``metrics["thinking"]``, never mixed into the text chunks). ``options``, ``format``
(``"json"`` or a JSON schema), ``keep_alive``, ``think`` and ``tools`` pass through unchanged;
``stream`` is always sent explicitly (Ollama streams when it is absent).

Errors (``integrations.errors``): an unknown model is ``NotFound`` naming the model and the
``ollama pull`` that fixes it; a refused connection is ``Unavailable`` explaining where we looked
(``OLLAMA_BASE_URL``) and the Docker ``localhost`` mistake; an ``{"error": ...}`` line inside a
200 stream is ``ProviderError``; a stream without its final ``"done": true`` is
``StreamInterrupted``. Both are retryable by the caller; the adapter retries only failures
before a response began.
"""

from __future__ import annotations

from django.conf import settings

from .adapter import AdapterClient, ApiAdapter
from .completions import ChatResult, ChatStream, Usage
from .errors import NotFound, ProviderError, StreamInterrupted
from .streaming import NdjsonDecoder, ResponseStream

PROVIDER = "ollama"
METRIC_KEYS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def unreachable_hint(base_url: str) -> str:
    return (
        f"Ollama is not reachable at OLLAMA_BASE_URL={base_url}. Start it with `ollama serve` "
        "(or the desktop app), or set OLLAMA_BASE_URL to where it listens. When this server runs "
        "in Docker, localhost/127.0.0.1 is the container itself: use "
        "http://host.docker.internal:11434 or the Ollama service's name, and make Ollama listen "
        "beyond loopback (OLLAMA_HOST=0.0.0.0)"
    )


class OllamaClient(AdapterClient):
    def __init__(self, *, base_url: str | None = None, **adapter_options):
        self.base_url = (base_url or settings.OLLAMA_BASE_URL).rstrip("/")
        self.adapter = ApiAdapter(
            provider=PROVIDER,
            base_url=self.base_url,
            unreachable_hint=unreachable_hint(self.base_url),
            **adapter_options,
        )

    # -- generation ------------------------------------------------------------------------------

    def chat(self, *, model: str, messages: list[dict], **params) -> ChatResult:
        body = self._chat_body(model, messages, stream=False, **params)
        data = self._generation_json("api/chat", body, model)
        message = data.get("message") or {}
        return ChatResult(
            text=message.get("content") or "",
            usage=self._usage(
                data, model, message.get("tool_calls"), message.get("thinking") or ""
            ),
            raw=data,
        )

    def chat_stream(self, *, model: str, messages: list[dict], **params) -> ChatStream:
        body = self._chat_body(model, messages, stream=True, **params)
        stream = self._open_generation("api/chat", body, model)
        return ChatStream(stream, _NdjsonParser(model, chat=True))

    def generate(self, *, model: str, prompt: str, **params) -> ChatResult:
        body = self._generate_body(model, prompt, stream=False, **params)
        data = self._generation_json("api/generate", body, model)
        return ChatResult(
            text=data.get("response") or "", usage=self._usage(data, model, None), raw=data
        )

    def generate_stream(self, *, model: str, prompt: str, **params) -> ChatStream:
        body = self._generate_body(model, prompt, stream=True, **params)
        stream = self._open_generation("api/generate", body, model)
        return ChatStream(stream, _NdjsonParser(model, chat=False))

    def embed(self, *, model: str, input: str | list[str], **params) -> list[list[float]]:  # noqa: A002
        body = {"model": model, "input": input, **_drop_none(params)}
        return self._generation_json("api/embed", body, model)["embeddings"]

    # -- models ------------------------------------------------------------------------------

    def version(self) -> str:
        return self.adapter.request_json("GET", "api/version")["version"]

    def tags(self) -> list[dict]:
        """The locally available models as Ollama lists them (``name``, ``size``, ``details``)."""
        return self.adapter.request_json("GET", "api/tags").get("models", [])

    def show(self, *, model: str) -> dict:
        return self._generation_json("api/show", {"model": model}, model)

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _options(params: dict) -> dict:
        """Map the provider-neutral knobs onto Ollama ``options``; explicit options win."""
        options = {
            "temperature": params.pop("temperature", None),
            "num_predict": params.pop("max_tokens", None),
            "seed": params.pop("seed", None),
            "stop": params.pop("stop", None),
        }
        options = {k: v for k, v in options.items() if v is not None}
        options.update(params.pop("options", None) or {})
        return options

    def _chat_body(self, model, messages, *, stream, **params) -> dict:
        json_mode = params.pop("json", False)
        options = self._options(params)
        body = {"model": model, "messages": messages, "stream": stream}
        if options:
            body["options"] = options
        if json_mode and "format" not in params:
            body["format"] = "json"
        body.update(_drop_none(params))  # format, keep_alive, think, tools, ...
        return body

    def _generate_body(self, model, prompt, *, stream, **params) -> dict:
        body = self._chat_body(model, [], stream=stream, **params)
        del body["messages"]
        body["prompt"] = prompt
        return body

    def _model_not_found(self, error: NotFound, model: str) -> NotFound:
        return NotFound(
            f"{error.message}: the model {model!r} is not available on the Ollama server at "
            f"{self.base_url}. Pull it with `ollama pull {model}`",
            provider=PROVIDER,
            status=error.status,
        )

    def _generation_json(self, path: str, body: dict, model: str) -> dict:
        try:
            return self.adapter.request_json("POST", path, json=body)
        except NotFound as exc:
            raise self._model_not_found(exc, model) from exc

    def _open_generation(self, path: str, body: dict, model: str) -> ResponseStream:
        try:
            return self.adapter.open_stream("POST", path, json=body)
        except NotFound as exc:
            raise self._model_not_found(exc, model) from exc

    @staticmethod
    def _usage(data: dict, model: str, tool_calls, thinking: str = "") -> Usage:
        prompt = data.get("prompt_eval_count")
        completion = data.get("eval_count")
        total = (prompt or 0) + (completion or 0) if (prompt, completion) != (None, None) else None
        return Usage(
            provider=PROVIDER,
            model=data.get("model") or model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=total,
            finish_reason=data.get("done_reason"),
            tool_calls=list(tool_calls or []),
            metrics={
                **{k: data[k] for k in METRIC_KEYS if k in data},
                # With ``think``, the reasoning text, kept apart from the answer.
                **({"thinking": thinking} if thinking else {}),
            },
        )


class _NdjsonParser:
    """Ollama's stream: one JSON object per line, the last one ``"done": true``."""

    def __init__(self, model: str, *, chat: bool):
        self._model = model
        self._chat = chat
        self._decoder = NdjsonDecoder(provider=PROVIDER)
        self._tool_calls: list = []
        self._thinking: list[str] = []

    def feed(self, data: bytes) -> list[str | Usage]:
        return self._items(self._decoder.feed(data))

    def finish(self) -> list[str | Usage]:
        return self._items(self._decoder.finish())

    def cut(self) -> Exception:
        return StreamInterrupted(
            "the Ollama stream ended without its final `done: true` line", provider=PROVIDER
        )

    def _items(self, objects: list) -> list[str | Usage]:
        items: list[str | Usage] = []
        for obj in objects:
            if not isinstance(obj, dict):
                raise StreamInterrupted("unexpected NDJSON value from Ollama", provider=PROVIDER)
            if "error" in obj:
                # An error after the stream began: the status stays 200 (docs/api errors).
                raise ProviderError(str(obj["error"]), provider=PROVIDER, status=200)
            if self._chat:
                message = obj.get("message") or {}
                text = message.get("content") or ""
                self._tool_calls.extend(message.get("tool_calls") or [])
                self._thinking.append(message.get("thinking") or "")
            else:
                text = obj.get("response") or ""
                self._thinking.append(obj.get("thinking") or "")
            if text:
                items.append(text)
            if obj.get("done"):
                thinking = "".join(self._thinking)
                items.append(OllamaClient._usage(obj, self._model, self._tool_calls, thinking))
                break
        return items


def _drop_none(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None}
