"""A streamed chat completion: the one path of LLM nodes (workflows) and chat replies (chat).

``completion_stream`` picks the provider's client (``providers.provider_client``: Groq with the
user's key), streams the reply, hands each text chunk to ``on_text`` and returns the whole text
and the provider's usage record. The reply is read by the process's one reading thread
(``integrations.reader``), and ``on_text`` is called there: it must not block (publishing a
token only queues it); the calling thread waits for the end. It stops within a moment of
``cancellation.cancel()`` from any thread (the client's and the stream's sockets are shut down)
by raising ``errors.Cancelled``.

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

from canvas.core.connections import release_connection
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


class _Reply:
    """One request's reply as it arrives, on the reading thread: nothing here may block."""

    def __init__(self, *, on_text: Callable[[str], None], max_bytes: int | None):
        self.on_text = on_text
        self.max_bytes = max_bytes
        self.parts: list[str] = []
        self.size = 0
        self.usage: Usage | None = None

    def add(self, item: str | Usage) -> None:
        if isinstance(item, Usage):
            self.usage = item
            return
        if not item:
            return
        self.parts.append(item)
        self.size += len(item.encode())
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise ReplyTooLarge(self.max_bytes)  # ends the stream
        self.on_text(item)


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
        client = provider_client(name=provider, user=user, **counted)  # reads Groq's key
        # The reply may take minutes: no database connection is held meanwhile.
        release_connection()
        cancellation.on_cancel(client.close)
        reply = _Reply(on_text=on_text, max_bytes=max_bytes)
        try:
            stream = client.chat_stream(model=model, messages=messages, **params)
            cancellation.on_cancel(stream.cancel)
            stream.pump(reply.add)
        except Cancelled:
            raise
        except IntegrationError as exc:
            if cancellation.cancelled:
                # A cancel that interrupted the call may surface as a transport error.
                raise Cancelled("cancelled", provider=provider) from None
            began = bool(reply.parts) or exc.code == "stream_interrupted"
            retry = max_attempts is not None and requests_made < max_attempts
            if retry and exc.retryable and began:
                if on_retry is not None:
                    on_retry(str(exc))
                continue
            raise
        finally:
            client.close()
        return Completion(text="".join(reply.parts), usage=reply.usage)
