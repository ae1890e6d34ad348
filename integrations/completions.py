"""What every LLM client returns: ``ChatResult`` (one answer), ``ChatStream`` and ``Usage``.

A ``ChatStream`` is read once, either way: iterated, it yields ``str`` text chunks as they
arrive and, as its very last item, one ``Usage`` record (token counts, finish reason, tool
calls, provider metrics), read in the iterating thread; ``pump(on_item)`` hands the same items
to ``on_item`` on the process's reading thread (``integrations.reader``) and returns at the end,
which is how replies stream (``integrations.llm``). It never ends quietly with half an answer:
a body that stops before the provider's terminator, a stall past the read timeout and a cut
connection raise ``StreamInterrupted`` (retryable); an error the provider sends inside the
stream raises ``ProviderError``. ``cancel()`` (or ``close()``) may be called from any other
thread: the blocked read returns at once and the reading call raises ``Cancelled``.

A provider's format is a ``StreamParser``: bytes in, items out, whichever thread reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

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


class StreamParser(Protocol):
    """A provider's stream format, fed the body's bytes as they arrive."""

    def feed(self, data: bytes) -> list[str | Usage]:
        """The items ``data`` completed; a ``Usage`` is the last one, and the stream's end.
        Raises ``ProviderError`` for an error sent in the stream, ``StreamInterrupted`` for a
        malformed one."""
        ...

    def finish(self) -> list[str | Usage]:
        """The body ended: what its unterminated rest held."""
        ...

    def cut(self) -> Exception:
        """The error of a body that ended before the provider's terminator."""
        ...


class ChatStream:
    """Text chunks, then one ``Usage``; single use; cancellable from another thread."""

    def __init__(self, stream: ResponseStream, parser: StreamParser):
        self._stream = stream
        self._parser = parser
        self._lock = threading.Lock()
        self._started = False
        self.text = ""
        self.usage: Usage | None = None

    @property
    def request_id(self) -> str | None:
        return self._stream.request_id

    def __iter__(self) -> Iterator[str | Usage]:
        self._start()
        stream, parser = self._stream, self._parser
        try:
            for data in stream.iter_bytes():
                for item in parser.feed(data):
                    if isinstance(item, Usage):
                        stream.mark_complete()
                        stream.drain()  # the connection may serve the next request
                    yield self._record(item)
                    if isinstance(item, Usage):
                        return
            for item in parser.finish():
                if isinstance(item, Usage):
                    stream.mark_complete()
                yield self._record(item)
                if isinstance(item, Usage):
                    return
            raise parser.cut()
        finally:
            stream.close()

    def pump(self, on_item: Callable[[str | Usage], None]) -> None:
        """Read the stream to its end on the process's reading thread, handing each item to
        ``on_item`` there (it must not block; what it raises ends the stream and is raised
        here). Returns at the end; raises as iterating would."""
        self._start()
        parser = self._parser

        def on_data(data: bytes) -> bool:
            for item in parser.feed(data):
                on_item(self._record(item))
                if isinstance(item, Usage):
                    return True
            return False

        def on_end() -> None:
            for item in parser.finish():
                on_item(self._record(item))
                if isinstance(item, Usage):
                    return
            raise parser.cut()

        try:
            self._stream.pump(on_data, on_end)
        finally:
            self._stream.close()

    def _start(self) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError("a ChatStream can be read only once")
            self._started = True

    def _record(self, item: str | Usage) -> str | Usage:
        if isinstance(item, Usage):
            self.usage = item
        else:
            self.text += item
        return item

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
