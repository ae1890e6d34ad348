"""What a chat reply asks the provider for, and its failures in words a user understands.

The call itself is ``integrations.llm.completion_stream`` (``chat.replies``). ``options`` gives
the conversation's generation options; ``describe_error`` turns what can go wrong into the
``error`` a failed message stores: ``{"code", "message", "provider", "retry_after"?}``, the
message saying what happened and what fixes it.
"""

from __future__ import annotations

import logging
from typing import Any

from chat.models import ChatProvider, Conversation
from integrations import errors
from integrations.keys import ApiKeyMissing, ApiKeyUnreadable

logger = logging.getLogger(__name__)

# Conversation.options keys and the client keyword each becomes (the clients map them onto
# the provider's own names: Ollama ``options.num_predict``, Groq ``max_completion_tokens``).
OPTION_KEYS = ("temperature", "max_tokens", "seed")


def options(conversation: Conversation) -> dict[str, Any]:
    """The conversation's generation options, as the clients' keyword arguments."""
    return {k: conversation.options[k] for k in OPTION_KEYS if k in (conversation.options or {})}


def describe_error(exc: BaseException, *, conversation: Conversation) -> dict[str, Any]:
    """What a failed reply stores and shows: never a traceback, never a secret."""
    provider = conversation.provider
    model = conversation.model
    label = ChatProvider(provider).label if provider in ChatProvider.values else provider
    if isinstance(exc, ApiKeyUnreadable):
        return _error(exc.code, exc.message, provider)
    if isinstance(exc, ApiKeyMissing):
        return _error(
            "api_key_missing",
            f"No {label} API key is set. Add one under /api/keys/ (provider {provider!r}).",
            provider,
        )
    if not isinstance(exc, errors.IntegrationError):
        logger.error("chat reply failed unexpectedly", exc_info=exc)
        return _error("internal_error", "Something went wrong on our side; try again.", provider)

    detail = exc.message
    if isinstance(exc, errors.NotFound):
        if provider == ChatProvider.OLLAMA:
            message = (
                f"The model {model!r} is not available in Ollama. Run `ollama pull {model}` on "
                "the Ollama server, or pick another model for this conversation."
            )
        else:
            message = (
                f"{label} has no model {model!r} (or your key cannot use it). Pick one from "
                f"/api/providers/{provider}/models/."
            )
        return _error("model_not_found", message, provider, detail=detail)
    if isinstance(exc, errors.AuthError):
        return _error(
            "auth_error",
            f"{label} refused the API key: it is wrong, revoked or lacks permission. Update "
            "it under /api/keys/.",
            provider,
            detail=detail,
        )
    if isinstance(exc, errors.RateLimited):
        wait = exc.retry_after
        when = f"try again in {_seconds(wait)}" if wait is not None else "try again shortly"
        return _error(
            "rate_limited",
            f"{label} is rate limiting this key; {when}.",
            provider,
            detail=detail,
            retry_after=wait,
        )
    if isinstance(exc, errors.Unavailable):
        if provider == ChatProvider.OLLAMA:
            message = (
                "Ollama is not running or not reachable. Start it (`ollama serve` or the "
                "desktop app), or check OLLAMA_BASE_URL."
            )
        else:
            message = f"{label} cannot be reached or has no capacity right now; try again."
        return _error("provider_unavailable", message, provider, detail=detail)
    if isinstance(exc, errors.StreamInterrupted):
        return _error(
            "stream_interrupted",
            f"The reply from {label} broke off before it finished; regenerate to try again.",
            provider,
            detail=detail,
        )
    if isinstance(exc, errors.BadRequest):
        return _error(
            "bad_request",
            f"{label} rejected the request: {detail}",
            provider,
            detail=detail,
        )
    # ProviderError and anything else from the provider side.
    return _error(
        "provider_error",
        f"{label} failed to answer: {detail}. Try again.",
        provider,
        detail=detail,
    )


def _error(code: str, message: str, provider: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "provider": provider, **extra}


def _seconds(value: float) -> str:
    seconds = max(1, round(value))
    if seconds < 120:
        return f"{seconds} s"
    return f"{round(seconds / 60)} min"
