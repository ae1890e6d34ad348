"""Groq client: the OpenAI-compatible ``/chat/completions`` (SSE) and ``/models`` under
``GROQ_BASE_URL`` (``https://api.groq.com/openai/v1``).

Interface (what the engine's ``llm`` node and chat call)::

    client = GroqClient(api_key=key)        # key from integrations.keys.key_resolve(...)
    stream = client.chat_stream(model="llama-3.3-70b-versatile",
                                messages=[{"role": "user", "content": "hi"}],
                                temperature=0, max_tokens=256, seed=1, json=False)
    for item in stream:        # str text chunks ..., then exactly one Usage as the last item
        ...
    stream.cancel()            # from another thread; the reader gets errors.Cancelled
    result = client.chat(model=..., messages=...)   # ChatResult(text, usage)
    client.models()            # [{"id", "owned_by", "context_window", "chat": bool, ...}]
    client.rate_limits         # RateLimits parsed from the last response's x-ratelimit-* headers

``Usage`` comes from ``usage`` or the last chunk's ``x_groq.usage``; ``tool_calls`` keep
``arguments`` as the JSON string Groq sends (Ollama sends an object); ``metrics`` holds Groq's
timings and the rate limits. The key never appears in an error message or a log line.

Errors (``integrations.errors``): 401 ``invalid_api_key`` → ``AuthError``; 404
``model_not_found`` → ``NotFound``; 413/429 ``rate_limit_exceeded`` → ``RateLimited`` with
``retry_after``; 498 ``capacity_exceeded`` → ``Unavailable``; 5xx → ``ProviderError`` after the
adapter's retries; every error keeps Groq's ``x-request-id``. A stream that ends without a
``finish_reason`` and ``data: [DONE]`` raises ``StreamInterrupted`` (the official SDK would
return the half answer); a ``data: {"error": ...}`` event raises ``ProviderError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from django.conf import settings

from .adapter import AdapterClient, ApiAdapter
from .completions import ChatResult, ChatStream, Usage
from .errors import AuthError, ProviderError, StreamInterrupted
from .streaming import SseDecoder

PROVIDER = "groq"
# Models that take audio or speak it, not chat messages.
NON_CHAT_MODEL = re.compile(r"whisper|tts|distil-whisper|orpheus", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_reset(value: str | None) -> float | None:
    """Groq's reset headers are Go durations: ``2m59.56s``, ``7.66s``, ``120ms``."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    factors = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    return sum(float(number) * factors[unit] for number, unit in parts)


def unreachable_hint(base_url: str) -> str:
    return (
        f"Check GROQ_BASE_URL={base_url} and that this server can reach it (outbound HTTPS, "
        "proxy settings)"
    )


@dataclass(frozen=True)
class RateLimits:
    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None  # seconds
    reset_tokens: float | None = None  # seconds

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits:
        def number(name):
            try:
                return int(headers[name])
            except (KeyError, TypeError, ValueError):
                return None

        return cls(
            limit_requests=number("x-ratelimit-limit-requests"),
            limit_tokens=number("x-ratelimit-limit-tokens"),
            remaining_requests=number("x-ratelimit-remaining-requests"),
            remaining_tokens=number("x-ratelimit-remaining-tokens"),
            reset_requests=parse_reset(headers.get("x-ratelimit-reset-requests")),
            reset_tokens=parse_reset(headers.get("x-ratelimit-reset-tokens")),
        )

    def as_dict(self) -> dict:
        return asdict(self)


class GroqClient(AdapterClient):
    def __init__(self, *, api_key: str, base_url: str | None = None, **adapter_options):
        if not api_key:
            raise AuthError("no Groq API key was given", provider=PROVIDER)
        self.base_url = (base_url or settings.GROQ_BASE_URL).rstrip("/")
        self.adapter = ApiAdapter(
            provider=PROVIDER,
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            unreachable_hint=unreachable_hint(self.base_url),
            **adapter_options,
        )

    def __repr__(self) -> str:  # never show the key
        return f"GroqClient(base_url={self.base_url!r})"

    @property
    def rate_limits(self) -> RateLimits:
        return RateLimits.from_headers(self.adapter.last_response_headers)

    # -- chat ----------------------------------------------------------------------------------

    def chat(self, *, model: str, messages: list[dict], **params) -> ChatResult:
        body = self._body(model, messages, stream=False, **params)
        data = self.adapter.request_json("POST", "chat/completions", json=body)
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        usage = data.get("usage") or (data.get("x_groq") or {}).get("usage") or {}
        return ChatResult(
            text=message.get("content") or "",
            usage=self._usage(
                usage,
                model=data.get("model") or model,
                finish_reason=choice.get("finish_reason"),
                tool_calls=message.get("tool_calls") or [],
                request_id=(data.get("x_groq") or {}).get("id"),
            ),
            raw=data,
        )

    def chat_stream(self, *, model: str, messages: list[dict], **params) -> ChatStream:
        body = self._body(model, messages, stream=True, **params)
        stream = self.adapter.open_stream(
            "POST", "chat/completions", json=body, headers={"Accept": "text/event-stream"}
        )
        return ChatStream(stream, _SseParser(self, model, stream.request_id))

    # -- models --------------------------------------------------------------------------------

    def models(self) -> list[dict]:
        """Models as Groq lists them, each with ``chat``: whether it takes chat messages."""
        data = self.adapter.request_json("GET", "models").get("data", [])
        return [{**m, "chat": not NON_CHAT_MODEL.search(str(m.get("id", "")))} for m in data]

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _body(model, messages, *, stream, **params) -> dict:
        body = {"model": model, "messages": messages, "stream": stream}
        if params.pop("json", False) and "response_format" not in params:
            body["response_format"] = {"type": "json_object"}
        max_tokens = params.pop("max_tokens", None)
        if max_tokens is not None:
            body["max_completion_tokens"] = max_tokens
        body.update({k: v for k, v in params.items() if v is not None})
        return body

    def _usage(self, usage: dict, *, model, finish_reason, tool_calls, request_id) -> Usage:
        metrics = {k: v for k, v in usage.items() if k.endswith("_time")}
        metrics["rate_limits"] = self.rate_limits.as_dict()
        return Usage(
            provider=PROVIDER,
            model=model,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
            finish_reason=finish_reason,
            tool_calls=tool_calls,
            request_id=request_id,
            metrics=metrics,
        )


class _SseParser:
    """Groq's stream: OpenAI-style chunks as server-sent events, ended by ``data: [DONE]``
    after a chunk with a ``finish_reason``."""

    def __init__(self, client: GroqClient, model: str, request_id: str | None):
        self._client = client
        self._model = model
        self._request_id = request_id
        self._decoder = SseDecoder()
        self._finish_reason = None
        self._usage: dict = {}
        self._tool_calls: dict[int, dict] = {}

    def feed(self, data: bytes) -> list[str | Usage]:
        items: list[str | Usage] = []
        for event in self._decoder.feed(data):
            if event.data.strip() == "[DONE]":
                if self._finish_reason is None:
                    raise self.cut()  # [DONE] without a finish_reason: the answer was cut
                items.append(
                    self._client._usage(
                        self._usage,
                        model=self._model,
                        finish_reason=self._finish_reason,
                        tool_calls=[self._tool_calls[i] for i in sorted(self._tool_calls)],
                        request_id=self._request_id,
                    )
                )
                break
            items.extend(self._texts(event.data))
        return items

    def finish(self) -> list[str | Usage]:
        return []  # an event not ended by a blank line is discarded (SSE)

    def cut(self) -> Exception:
        return StreamInterrupted(
            "the Groq stream ended without a finish_reason and `data: [DONE]`",
            provider=PROVIDER,
            request_id=self._request_id,
        )

    def _texts(self, data: str) -> list[str]:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise StreamInterrupted(
                "malformed event in the Groq stream",
                provider=PROVIDER,
                request_id=self._request_id,
            ) from exc
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError(
                message or "error event in the stream",
                provider=PROVIDER,
                status=200,
                request_id=self._request_id,
            )
        self._model = chunk.get("model") or self._model
        x_groq = chunk.get("x_groq") or {}
        self._usage = chunk.get("usage") or x_groq.get("usage") or self._usage
        texts = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            for call in delta.get("tool_calls") or []:
                _merge_tool_call(self._tool_calls, call)
            if delta.get("content"):
                texts.append(delta["content"])
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return texts


def _merge_tool_call(calls: dict[int, dict], delta: dict) -> None:
    """OpenAI-style streams may split one call's ``arguments`` string over several chunks."""
    index = delta.get("index", len(calls))
    call = calls.setdefault(index, {"id": None, "type": "function", "function": {}})
    if delta.get("id"):
        call["id"] = delta["id"]
    function = delta.get("function") or {}
    if function.get("name"):
        call["function"]["name"] = function["name"]
    if "arguments" in function and function["arguments"] is not None:
        call["function"]["arguments"] = (
            call["function"].get("arguments", "") + function["arguments"]
        )
