"""A fake Groq server: the OpenAI-compatible API under ``/openai/v1`` as Groq documents it.

``GET /openai/v1/models`` (``{"object": "list", "data": [...]}``) and
``POST /openai/v1/chat/completions``. Every request needs ``Authorization: Bearer <key>`` with a
key in ``valid_keys``. Streams are ``text/event-stream``: ``data: {chunk}\\n\\n`` per
``chat.completion.chunk``, the last chunk with ``finish_reason`` and ``x_groq.usage``, then
``data: [DONE]``. Every response carries ``x-request-id`` and the ``x-ratelimit-*`` headers;
errors are ``{"error": {"message", "type", "code"}}`` (401 ``invalid_api_key``, 404
``model_not_found``, 429 ``rate_limit_exceeded`` with ``retry-after``, 498
``capacity_exceeded``, 5xx); an error after a stream began is a ``data: {"error": {...}}`` event.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid

from .base import Behaviour, FakeHandler, FakeServer, RecordedRequest, tokens_of

PREFIX = "/openai/v1"
SSE = "text/event-stream"
TEST_KEY = "gsk_" + "t3st" * 13  # 56 characters, the shape of a real key

DEFAULT_MODELS = [
    {
        "id": "llama-3.3-70b-versatile",
        "object": "model",
        "created": 1733447754,
        "owned_by": "Meta",
        "active": True,
        "context_window": 131072,
        "public_apps": None,
        "max_completion_tokens": 32768,
    },
    {
        "id": "llama-3.1-8b-instant",
        "object": "model",
        "created": 1693721698,
        "owned_by": "Meta",
        "active": True,
        "context_window": 131072,
        "public_apps": None,
        "max_completion_tokens": 131072,
    },
    {
        "id": "whisper-large-v3",
        "object": "model",
        "created": 1693721698,
        "owned_by": "OpenAI",
        "active": True,
        "context_window": 448,
        "public_apps": None,
        "max_completion_tokens": 448,
    },
]

ERROR_DEFAULTS = {
    400: ("invalid_request_error", None, "Invalid request"),
    401: ("invalid_request_error", "invalid_api_key", "Invalid API Key"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist"),
    413: ("tokens", "rate_limit_exceeded", "Request too large for model"),
    429: ("tokens", "rate_limit_exceeded", "Rate limit reached for model"),
    498: ("capacity_exceeded", "capacity_exceeded", "Flex tier capacity exceeded"),
    500: ("internal_server_error", None, "Internal Server Error"),
    502: ("internal_server_error", None, "Bad Gateway"),
    503: ("internal_server_error", "service_unavailable", "Service Unavailable"),
}


class FakeGroq(FakeServer):
    def __init__(self):
        super().__init__()
        self.models = [dict(m) for m in DEFAULT_MODELS]
        self.valid_keys = {TEST_KEY}
        self.reply = "Fast inference is fun."
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """What GROQ_BASE_URL is set to (the official SDK takes ``url`` and adds the prefix)."""
        return self.url + PREFIX

    def _request_id(self) -> str:
        return f"req_{next(self._ids):02d}{uuid.uuid4().hex[:22]}"

    @staticmethod
    def ratelimit_headers() -> dict:
        return {
            "x-ratelimit-limit-requests": "14400",
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-requests": "14399",
            "x-ratelimit-remaining-tokens": "5990",
            "x-ratelimit-reset-requests": "6s",
            "x-ratelimit-reset-tokens": "100ms",
        }

    def _error(
        self, handler, status, request_id, *, message=None, type_=None, code=None, headers=None
    ):
        default_type, default_code, default_message = ERROR_DEFAULTS.get(
            status, ("internal_server_error", None, "error")
        )
        error = {
            "message": message or default_message,
            "type": type_ or default_type,
        }
        if (code or default_code) is not None:
            error["code"] = code or default_code
        all_headers = {"x-request-id": request_id, **self.ratelimit_headers(), **(headers or {})}
        handler.send_json(status, {"error": error}, headers=all_headers)

    def handle(self, handler: FakeHandler, request: RecordedRequest, behaviour: Behaviour):
        request_id = self._request_id()
        path = request.path.split("?")[0]
        auth = request.headers.get("Authorization") or request.headers.get("authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:] not in self.valid_keys:
            self._error(handler, 401, request_id)
            return
        if behaviour.status >= 400:
            self._error(
                handler,
                behaviour.status,
                request_id,
                message=behaviour.error,
                type_=behaviour.error_type,
                code=behaviour.error_code,
                headers=behaviour.headers,
            )
            return
        if request.method == "GET" and path == f"{PREFIX}/models":
            handler.send_json(
                200,
                {"object": "list", "data": self.models},
                headers={"x-request-id": request_id, **behaviour.headers},
            )
            return
        if request.method == "POST" and path == f"{PREFIX}/chat/completions":
            self._chat(handler, request, behaviour, request_id)
            return
        self._error(
            handler,
            404,
            request_id,
            message="Unknown request URL. Please check the URL for typos.",
            type_="invalid_request_error",
            code="unknown_url",
        )

    def _chat(self, handler, request, behaviour, request_id):
        try:
            body = json.loads(request.body)
        except ValueError:
            self._error(handler, 400, request_id, message="invalid JSON body")
            return
        model = body.get("model")
        if model not in {m["id"] for m in self.models}:
            self._error(
                handler,
                404,
                request_id,
                message=f"The model `{model}` does not exist or you do not have access to it.",
            )
            return
        messages = body.get("messages") or []
        if not messages:
            self._error(
                handler, 400, request_id, message="'messages' : minimum number of items is 1"
            )
            return
        text = behaviour.reply if behaviour.reply is not None else self.reply
        tokens = tokens_of(text)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        created = int(time.time())
        completion_id = f"chatcmpl-{uuid.uuid4()}"
        headers = {"x-request-id": request_id, **self.ratelimit_headers(), **behaviour.headers}
        tool_calls = None
        if body.get("tools"):
            tool_calls = [
                {
                    "id": "call_d5wg",
                    "type": "function",
                    "function": {
                        "name": body["tools"][0]["function"]["name"],
                        # OpenAI-style: arguments are a JSON string, not an object.
                        "arguments": json.dumps({"location": "Paris, FR"}),
                    },
                }
            ]
        usage = {
            "queue_time": 0.0123,
            "prompt_tokens": prompt_tokens,
            "prompt_time": 0.0021,
            "completion_tokens": len(tokens),
            "completion_time": 0.0345,
            "total_tokens": prompt_tokens + len(tokens),
            "total_time": 0.0366,
        }
        if not body.get("stream"):
            if behaviour.first_token_delay and not handler.wait(behaviour.first_token_delay):
                return
            message = {"role": "assistant", "content": None if tool_calls else text}
            if tool_calls:
                message["tool_calls"] = tool_calls
            handler.send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": "tool_calls" if tool_calls else "stop",
                        }
                    ],
                    "usage": usage,
                    "usage_breakdown": None,
                    "system_fingerprint": "fp_fake0001",
                    "x_groq": {"id": request_id},
                    "service_tier": "on_demand",
                },
                headers=headers,
            )
            return

        def chunk(delta: dict, finish_reason=None, *, with_usage=False) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake0001",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
                "x_groq": {"id": request_id, **({"usage": usage} if with_usage else {})},
            }
            return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

        handler.start_chunked(200, SSE, headers)
        if behaviour.raw_stream is not None:
            handler.write_chunk(behaviour.raw_stream, byte_by_byte=behaviour.byte_by_byte)
            handler.end_chunked()
            return
        if behaviour.first_token_delay and not handler.wait(behaviour.first_token_delay):
            return
        handler.write_chunk(chunk({"role": "assistant", "content": ""}))
        for index, token in enumerate(tokens):
            if behaviour.error_after is not None and index == behaviour.error_after:
                error = {
                    "error": {
                        "message": behaviour.error or "Internal Server Error",
                        "type": behaviour.error_type or "internal_server_error",
                    }
                }
                handler.write_chunk(b"data: " + json.dumps(error).encode() + b"\n\n")
                handler.end_chunked()
                return
            if not handler.before_token(behaviour, index):
                return
            handler.write_chunk(chunk({"content": token}), byte_by_byte=behaviour.byte_by_byte)
        if behaviour.omit_terminator:
            handler.end_chunked()
            return
        if tool_calls:
            handler.write_chunk(chunk({"tool_calls": [{"index": 0, **tool_calls[0]}]}))
        handler.write_chunk(
            chunk({}, "tool_calls" if tool_calls else "stop", with_usage=True),
            byte_by_byte=behaviour.byte_by_byte,
        )
        handler.write_chunk(b"data: [DONE]\n\n")
        handler.end_chunked()
