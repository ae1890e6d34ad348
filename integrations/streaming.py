"""Streaming helpers: incremental NDJSON and SSE decoders, and a cancellable byte stream.

The decoders are pure and incremental: ``feed(bytes)`` returns whatever complete items the
bytes finished, ``finish()`` reports what the end of the body left behind. They split on bytes
before decoding UTF-8: a line terminator is ASCII and never part of a multi-byte sequence, so a
character split across two reads is decoded whole once its line is complete.

``ResponseStream`` wraps a streamed ``requests`` response. ``iter_bytes`` reads it in the
calling thread with ``read1`` (whatever the socket has, never waiting to fill a buffer);
``pump`` hands it to the process's one reading thread (``integrations.reader``) and waits for
its end, the way every LLM reply streams. Either way a stall past the read timeout or a cut
connection is ``StreamInterrupted`` (retryable), and ``cancel()`` works from another thread: it
shuts the socket down, which wakes a reader blocked in ``recv`` at once (closing a ``requests``
response from another thread does not). A stream that did not reach its end is closed, never
returned to the connection pool half-read.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
import requests
import urllib3.exceptions

from . import reader
from .errors import Cancelled, StreamInterrupted

READ_SIZE = 65536
# A line (NDJSON) or pending event (SSE) longer than this is not a provider talking sense.
MAX_PENDING = 16 * 1024 * 1024
# How long to wait for the end of a body once its terminator arrived.
DRAIN_TIMEOUT = 2.0


# --- NDJSON ---------------------------------------------------------------------------------


class NdjsonDecoder:
    """One JSON value per line (Ollama). Blank lines are skipped; ``\\r\\n`` is accepted."""

    def __init__(self, *, provider: str = "http"):
        self._buffer = b""
        self._provider = provider

    def feed(self, data: bytes) -> list:
        self._buffer += data
        if b"\n" not in data:
            if len(self._buffer) > MAX_PENDING:
                raise StreamInterrupted("an NDJSON line exceeds 16 MiB", provider=self._provider)
            return []
        *lines, self._buffer = self._buffer.split(b"\n")
        return [self._decode(line) for line in lines if line.strip()]

    def finish(self) -> list:
        """The body ended: a last line without its newline still counts if it is whole JSON."""
        rest, self._buffer = self._buffer, b""
        return [self._decode(rest)] if rest.strip() else []

    def _decode(self, line: bytes):
        # orjson: a token's line in a fifth of json.loads' time, on the one thread that reads
        # every stream of the process. It takes the bytes and rejects invalid UTF-8 itself.
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise StreamInterrupted(
                f"malformed NDJSON line from the provider: {exc}", provider=self._provider
            ) from exc


# --- Server-sent events ---------------------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str = "message"
    id: str | None = None


class SseDecoder:
    """The event-stream format of the HTML standard (section 9.2.6), as OpenAI-style APIs use it.

    Lines end with CRLF, LF or CR; a blank line dispatches the event; several ``data:`` lines are
    joined with newlines; lines starting with ``:`` are comments (keep-alives); one space after
    the colon is dropped; unknown fields are ignored; an event with no ``data`` is not
    dispatched.
    """

    def __init__(self):
        self._buffer = b""
        self._after_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._last_id: str | None = None

    def feed(self, data: bytes) -> list[SseEvent]:
        buf = self._buffer + data if self._buffer else data
        size = len(buf)
        pos = 0
        if self._after_cr and buf[:1] == b"\n":
            pos = 1  # the LF of a CRLF whose CR ended the previous read
        self._after_cr = False
        events: list[SseEvent] = []
        # Walk with an offset: slicing the rest of the buffer per line would be quadratic.
        while pos < size:
            lf = buf.find(b"\n", pos)
            cr = buf.find(b"\r", pos, lf if lf >= 0 else size)
            if cr >= 0:  # a CR ends the line, alone or as the start of a CRLF
                line = buf[pos:cr]
                if cr + 1 == lf:
                    pos = lf + 1
                else:
                    pos = cr + 1
                    # Dispatch now; an LF arriving in the next read belongs to this CR.
                    self._after_cr = pos == size
            elif lf >= 0:
                line = buf[pos:lf]
                pos = lf + 1
            else:
                break
            event = self._process(line)
            if event is not None:
                events.append(event)
        self._buffer = buf[pos:]
        if len(self._buffer) > MAX_PENDING:
            raise StreamInterrupted("an SSE line exceeds 16 MiB")
        return events

    def finish(self) -> list[SseEvent]:
        """End of body: the standard discards an event not yet ended by a blank line."""
        self._buffer = b""
        self._data = []
        return []

    def _process(self, raw: bytes) -> SseEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(
                data="\n".join(self._data), event=self._event or "message", id=self._last_id
            )
            self._data = []
            self._event = ""
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._last_id = value
        return None


# --- A cancellable stream of bytes ----------------------------------------------------------


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket under a streamed response: its connection's (urllib3 2 keeps the connection
    until released) or, for a response that closes its connection at its end (http.client
    dropped the connection's socket then), the one its body is read from."""
    connection = getattr(response.raw, "connection", None) or getattr(
        response.raw, "_connection", None
    )
    sock = getattr(connection, "sock", None)
    if sock is None:
        sock = getattr(getattr(_body_reader(response), "raw", None), "_sock", None)  # SocketIO's
    return sock


def _body_reader(response: requests.Response):
    """http.client's buffered reader of the body (what it read past the head is in it)."""
    return getattr(getattr(response.raw, "_fp", None), "fp", None)


class ResponseStream:
    """Reads a streamed response's body as it arrives; ``cancel()`` works from any thread."""

    def __init__(self, response: requests.Response, *, provider: str):
        self.response = response
        self.provider = provider
        self.request_id = response.headers.get("x-request-id")
        self._socket = _socket_of(response)
        self._cancelled = threading.Event()
        # Set when the adapter that made the request was cancelled (it shut this socket too).
        self._adapter_cancelled = getattr(response, "canvas_cancel_event", None)
        self._closed = False
        self._complete = False
        # Its socket is registered with the reading thread: only that thread may close it.
        self._pumping = False
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        adapter = self._adapter_cancelled
        return self._cancelled.is_set() or (adapter is not None and adapter.is_set())

    def iter_bytes(self) -> Iterator[bytes]:
        raw = self.response.raw
        while True:
            if self.cancelled:
                raise Cancelled("the stream was cancelled", provider=self.provider)
            try:
                data = raw.read1(READ_SIZE, decode_content=True)
            except (
                urllib3.exceptions.ReadTimeoutError,
                urllib3.exceptions.ProtocolError,
                urllib3.exceptions.DecodeError,
                OSError,
                ValueError,  # reading a file object closed by cancel()
                AttributeError,  # urllib3 after its fp was dropped by a concurrent close
            ) as exc:
                if self.cancelled:
                    raise Cancelled("the stream was cancelled", provider=self.provider) from exc
                cause = "stalled past the read timeout" if _is_timeout(exc) else "was cut"
                raise StreamInterrupted(
                    f"the response stream {cause} before it finished",
                    provider=self.provider,
                    request_id=self.request_id,
                ) from exc
            if not data:
                if self.cancelled:
                    raise Cancelled("the stream was cancelled", provider=self.provider)
                return
            yield data

    def pump(self, on_data: Callable[[bytes], bool], on_end: Callable[[], None]) -> None:
        """Read the whole body, calling ``on_data(bytes)`` with each piece and ``on_end()`` at
        the end of the body; ``on_data`` returns True once it saw the provider's terminator
        (then reading stops, and ``on_end`` is not called).

        The reading happens on the process's reading thread (``integrations.reader``), and so
        do the calls: they must not block. This thread waits for the end and raises what ended
        it otherwise (``StreamInterrupted``, ``Cancelled``, or what a callback raised). A body
        the reading thread cannot take (a socket ``requests`` hides behind a TLS proxy tunnel,
        an encoding other than gzip, a framing the reader does not take) is read here, the same way.
        """
        body = self._handover(on_data, on_end)
        if body is None:
            for data in self.iter_bytes():
                if on_data(data):
                    self.mark_complete()
                    self.drain()
                    return
            on_end()
            self.mark_complete()
            return
        try:
            reader.reader().read(body)
        finally:
            with self._lock:
                self._pumping = False
            self.close()

    def _handover(self, on_data, on_end) -> reader.Body | None:
        """The body for the reading thread (with what ``http.client`` already read of it), or
        None when the reading thread cannot take it."""
        sock = self._socket
        buffer = _body_reader(self.response)
        encoding = self.response.headers.get("content-encoding", "identity").strip().lower()
        if not isinstance(sock, socket.socket) or buffer is None:
            return None
        if encoding not in ("identity", "gzip"):
            return None
        framing = reader.framing_for(
            method=self.response.request.method,
            version=getattr(self.response.raw, "version", 11),
            headers=self.response.headers,
        )
        if framing is None:
            return None
        with self._lock:
            if self._closed:
                raise Cancelled("the stream was cancelled", provider=self.provider)
            self._pumping = True
        read_timeout = sock.gettimeout()
        try:
            sock.setblocking(False)
            buffered = buffer.read1(READ_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError):
            buffered = b""
        except OSError:
            buffered = b""  # shut down by a cancel: the reader reports it
        return reader.Body(
            sock=sock,
            buffered=buffered or b"",
            framing=framing,
            gzip=encoding == "gzip",
            on_data=on_data,
            on_end=on_end,
            read_timeout=read_timeout,
            provider=self.provider,
            request_id=self.request_id,
            cancelled=lambda: self.cancelled,
        )

    def mark_complete(self) -> None:
        """The caller saw the stream's terminator: the connection may go back to the pool."""
        with self._lock:
            if not self._cancelled.is_set():
                self._complete = True

    def drain(self) -> None:
        """Read what follows the terminator (the chunked trailer) so the connection is reusable.

        A server that keeps the body open after its terminator would hold the caller for the
        whole read timeout; a short one applies here (urllib3 sets the socket's timeout again
        for the next request on this connection), and on expiry the connection is dropped.
        """
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.settimeout(DRAIN_TIMEOUT)
        try:
            while self.response.raw.read1(READ_SIZE, decode_content=True):
                pass
        except Exception:  # noqa: BLE001 - a failed drain only costs the connection
            with self._lock:
                self._complete = False

    def cancel(self) -> None:
        """Stop the stream now, from any thread: a blocked read returns within milliseconds.

        A stream that already completed is left alone: its connection may be back in the pool
        serving another request, and shutting that socket would break it.
        """
        with self._lock:
            if self._closed or self._complete:
                return
            self._cancelled.set()
        self._shutdown()
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._pumping:
                # The reading thread holds the socket: stop it there; the pumping thread
                # closes the stream once the reader let it go.
                self._cancelled.set()
                pumping = True
            else:
                pumping = False
                self._closed = True
                complete = self._complete
        if pumping:
            self._shutdown()
            return
        if complete:
            # Fully read: hand the connection back to the pool for the next request.
            self.response.raw.release_conn()
            return
        # A half-read connection must not be reused: shut it, then let requests close it.
        self._shutdown()
        self.response.close()

    def _shutdown(self) -> None:
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


def _is_timeout(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError | socket.timeout):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
