"""Typed errors of every outbound HTTP call (providers and the HTTP node).

The adapter maps transport failures and HTTP statuses to these once; clients refine them with
the provider's own message (an Ollama ``{"error": ...}`` body, a Groq ``{"error": {...}}``).
Callers branch on the class and on ``retryable``, never on message text.

Messages never contain secrets: the adapter never puts request headers (which carry API keys)
into a message, and ``redact`` scrubs anything that looks like a bearer token or a Groq key from
provider text before it is stored here.
"""

from __future__ import annotations

import re

# Groq keys look like ``gsk_`` + 52 characters; OpenAI-style ``sk-...``; any bearer token.
_SECRET_PATTERNS = (
    re.compile(r"\b(gsk|sk|xai)[-_][A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/]+=*"),
)


def redact(text: str) -> str:
    """Hide anything that looks like a key, keeping its prefix so the cause stays readable."""
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}_…", text)
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}…", text)


class IntegrationError(Exception):
    """An outbound call failed.

    ``provider`` names the remote side (``ollama``, ``groq``, ``http``), ``status`` is the HTTP
    status when a response arrived (None for connection errors and timeouts), ``message`` is the
    provider's own explanation when it gave one, ``request_id`` its request id (Groq's
    ``x-request-id``) and ``retryable`` whether trying the same request again may succeed.
    """

    retryable = False
    code = "integration_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str = "http",
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ):
        message = redact(str(message))
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.request_id = request_id
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        parts = [f"{self.provider}: {self.message}"]
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        if self.request_id:
            parts.append(f"[request {self.request_id}]")
        return " ".join(parts)

    def as_dict(self) -> dict:
        """A JSON-safe description for node runs, messages and events."""
        return {
            "code": self.code,
            "provider": self.provider,
            "status": self.status,
            "message": self.message,
            "request_id": self.request_id,
            "retryable": self.retryable,
        }


class AuthError(IntegrationError):
    """401/403: the key is missing, wrong or lacks permission. Retrying cannot help."""

    code = "auth_error"


class RateLimited(IntegrationError):
    """429 (or Groq's 413 ``rate_limit_exceeded``) whose wait exceeds what we retry silently.

    ``retry_after`` is the number of seconds the provider asked for (None when it gave none).
    It is retryable: the engine may try again after ``retry_after``.
    """

    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def as_dict(self) -> dict:
        return {**super().as_dict(), "retry_after": self.retry_after}


class NotFound(IntegrationError):
    """404: an unknown model or path."""

    code = "not_found"


class BadRequest(IntegrationError):
    """400, 413, 422 and other 4xx answers: the request itself is wrong."""

    code = "bad_request"


class ProviderError(IntegrationError):
    """5xx after the retries ran out, or a malformed / truncated answer from the provider."""

    code = "provider_error"
    retryable = True


class Unavailable(IntegrationError):
    """The provider cannot be reached (refused, DNS, timeout) or says it has no capacity (498)."""

    code = "unavailable"
    retryable = True


class StreamInterrupted(ProviderError):
    """A stream that ended (or stalled) before its terminator: never half an answer."""

    code = "stream_interrupted"
    retryable = True


class Cancelled(IntegrationError):
    """The caller cancelled the stream (``close()``/``cancel()`` from another thread)."""

    code = "cancelled"
    retryable = False


class BlockedAddress(IntegrationError):
    """The address guard refused a user-supplied URL (private, loopback, ... or unresolvable)."""

    code = "blocked_address"
    retryable = False
