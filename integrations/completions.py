"""What every LLM client returns: ``ChatResult`` (one answer), ``ChatStream`` and ``Usage``.

A ``ChatStream`` is iterated once. It yields ``str`` text chunks as they arrive and, as its very
last item, one ``Usage`` record (token counts, finish reason, tool calls, provider metrics). It
never ends quietly with half an answer: a body that stops before the provider's terminator, a
stall past the read timeout and a cut connection raise ``StreamInterrupted`` (retryable); an
error the provider sends inside the stream raises ``ProviderError``. ``cancel()`` (or
``close()``) may be called from any other thread: the blocked read returns at once and the
iterating thread gets ``Cancelled``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from .streaming import ResponseStream


@dataclass
class Usage:
    provider: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    finish_reason: str | None = None
    tool_calls: list = field(default_factory=list)
    request_id: str | None = None
    # Provider metrics as the provider named them (Ollama durations in ns, Groq times in s,
    # Groq rate limits).
    metrics: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ChatResult:
    text: str
    usage: Usage
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def tool_calls(self) -> list:
        return self.usage.tool_calls


class ChatStream:
    """Text chunks, then one ``Usage``; single use; cancellable from another thread."""

    def __init__(self, stream: ResponseStream, items: Iterator[str | Usage]):
        self._stream = stream
        self._items = items
        self._lock = threading.Lock()
        self._started = False
        self.text = ""
        self.usage: Usage | None = None

    @property
    def request_id(self) -> str | None:
        return self._stream.request_id

    def __iter__(self) -> Iterator[str | Usage]:
        with self._lock:
            if self._started:
                raise RuntimeError("a ChatStream can be iterated only once")
            self._started = True
        try:
            for item in self._items:
                if isinstance(item, Usage):
                    self.usage = item
                else:
                    self.text += item
                yield item
        finally:
            self._stream.close()

    def cancel(self) -> None:
        """Stop now, from any thread; the iterating thread gets ``Cancelled``."""
        self._stream.cancel()

    def close(self) -> None:
        """Stop early (from any thread); a stream that already completed is unaffected."""
        self._stream.cancel()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc) -> None:
        self._stream.close()

    def collect(self) -> ChatResult:
        """Read the whole stream (in this thread) into one ``ChatResult``."""
        for _item in self:
            pass
        return ChatResult(text=self.text, usage=self.usage)
