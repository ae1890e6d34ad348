"""A streamed chat completion: the one path of LLM nodes (workflows) and chat replies (chat).

``completion_stream`` picks the provider's client (``providers.provider_client``: Groq with the
user's key), streams the reply, hands each text chunk to ``on_text`` and returns the whole text
and the provider's usage record. It stops within a moment of ``cancellation.cancel()`` from any
thread (the client's and the stream's sockets are shut down) by raising ``errors.Cancelled``.

Retries have one owner each. The adapter retries a request that failed before its response
began (connection, 408/409/429/5xx; a cancel cuts its wait short). With ``max_attempts`` (LLM
nodes) the requests are counted: ``on_retry(reason)`` is told before each adapter retry, and a
stream that broke after it began is requested again (``on_retry`` again: the partial text is
dropped, ``on_text`` starts over), at most ``max_attempts`` requests in all. Without it (chat
replies) the adapter keeps its own policy and a broken stream is the end: the user sees what
arrived and may regenerate.

Failures raise ``errors.IntegrationError`` subclasses (``ApiKeyMissing`` when Groq has no key)
and ``ReplyTooLarge`` past ``max_bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from integrations.cancellation import Cancellation
from integrations.completions import Usage
from integrations.errors import Cancelled, IntegrationError
from integrations.providers import provider_client


class ReplyTooLarge(Exception):
    code = "output_too_large"

    def __init__(self, limit: int):
        self.message = f"The reply exceeded the size limit of {limit} bytes."
        super().__init__(self.message)


@dataclass
class Completion:
    text: str
    usage: Usage | None


def completion_stream(
    *,
    provider: str,
    user,
    model: str,
    messages: list[dict[str, str]],
    params: dict[str, Any],
    cancellation: Cancellation,
    on_text: Callable[[str], None],
    on_retry: Callable[[str], None] | None = None,
    max_attempts: int | None = None,
    max_bytes: int | None = None,
) -> Completion:
    requests_made = 0

    def sleep(delay: float) -> None:
        # The adapter is about to retry: say so, and let a cancel cut the wait short.
        nonlocal requests_made
        requests_made += 1
        if on_retry is not None:
            on_retry(f"the request failed before its response began; retrying in {delay:.2f} s")
        if cancellation.event.wait(delay):
            raise Cancelled("cancelled while waiting to retry", provider=provider)

    while True:
        if cancellation.cancelled:
            raise Cancelled("cancelled before the call", provider=provider)
        requests_made += 1
        counted = {}
        if max_attempts is not None:
            counted = {"sleep": sleep, "max_retries": max(0, max_attempts - requests_made)}
        client = provider_client(name=provider, user=user, **counted)
        cancellation.on_cancel(client.close)
        parts: list[str] = []
        size = 0
        try:
            stream = client.chat_stream(model=model, messages=messages, **params)
            cancellation.on_cancel(stream.cancel)
            usage = None
            for item in stream:
                if isinstance(item, Usage):
                    usage = item
                    continue
                if not item:
                    continue
                parts.append(item)
                size += len(item.encode())
                if max_bytes is not None and size > max_bytes:
                    stream.cancel()
                    raise ReplyTooLarge(max_bytes)
                on_text(item)
        except Cancelled:
            raise
        except IntegrationError as exc:
            if cancellation.cancelled:
                # A cancel that interrupted the call may surface as a transport error.
                raise Cancelled("cancelled", provider=provider) from None
            began = bool(parts) or exc.code == "stream_interrupted"
            retry = max_attempts is not None and requests_made < max_attempts
            if retry and exc.retryable and began:
                if on_retry is not None:
                    on_retry(str(exc))
                continue
            raise
        finally:
            client.close()
        return Completion(text="".join(parts), usage=usage)
