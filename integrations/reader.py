"""One thread reads the body of every provider stream the process has open.

A hundred LLM nodes streaming at once used to be a hundred threads each reading its own socket
and taking the GIL for every few-millisecond chunk; the serving loop, which gives the GIL up on
every system call, queued behind them and relayed tokens a second late (docs/benchmarks.md,
"Where the streams' latency goes"). Now the thread that opened a stream hands the body over
(``ResponseStream.pump``) and sleeps until its end, and this module's one thread per process
waits on every such socket at once (``selectors``) and does the per-chunk work:

- the body's framing by ``httptools`` (llhttp, the C parser uvicorn uses: chunked,
  ``Content-Length`` or until close; the head was already parsed by ``requests``, so the
  parser is told only the framing headers),
- ``gzip`` undone with ``zlib`` (a proxy or CDN may compress an event stream),
- ``on_data(bytes)`` called with each piece, on this thread: the provider's parser, the token
  callbacks. They must not block (publishing a token only queues it).

What a reading thread did, this one does per body: a read timeout that restarts with each piece
of data (``StreamInterrupted``, retryable), a cut connection or a malformed body
(``StreamInterrupted``), a cancel from any thread (the socket is shut down, which wakes the
reader at once; ``Cancelled``), and whatever ``on_data`` raises (a provider's in-stream error,
a reply over its size limit), each raised in the waiting thread. ``on_data`` returns True once
it saw the provider's terminator: the body is done then, whatever follows it.

The connection of a pumped body is never reused: it was switched to non-blocking mode under
``http.client``'s feet. Each completion has its own client and session anyway.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable

import httptools

from .errors import Cancelled, StreamInterrupted

logger = logging.getLogger(__name__)

READ_SIZE = 65536
# Reads of one socket before the others get their turn.
READS_PER_TURN = 8
# How often stalls and cancels are looked for when no data wakes the reader.
SWEEP_SECONDS = 0.05
# After a turn that read, the reader sleeps this long before it looks again, so that the next
# select reports many sockets at once and each recv takes what arrived meanwhile. Each select
# and recv gives the GIL up and takes it back (a hand-over with the serving loop each time); a
# hundred streams at 5 ms a token cost the thread 34-35 us of CPU a token without the pause,
# 25-27 us with it (bench/stream_read_cpu.py). A token waits at most this long more, against
# the 20 ms that node.token messages are coalesced over.
GATHER_SECONDS = 0.004
# ... when at least this many bodies are open: one stream, or a few, gain nothing from the
# pause (their selects report one socket anyway) and their tokens would wait it: a token
# every 2 ms took 10.1 ms to a socket with it, against 3.9 ms without (p50,
# bench/realtime.py, 01:12).
GATHER_BODIES = 4

OnData = Callable[[bytes], bool]
OnEnd = Callable[[], None]


class Body:
    """One response body being pumped: its socket, framing, decoding and outcome."""

    def __init__(
        self,
        *,
        sock: socket.socket,
        buffered: bytes,
        framing: Framing,
        gzip: bool,
        on_data: OnData,
        on_end: OnEnd,
        read_timeout: float | None,
        provider: str,
        request_id: str | None,
        cancelled: Callable[[], bool],
    ):
        self.sock = sock
        self.fd = sock.fileno()
        # A TLS socket may hold decrypted bytes no select reports: read it until it has none.
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.framing = framing
        self.decompressor = _gunzip() if gzip else None
        self.on_data = on_data
        self.on_end = on_end
        self.read_timeout = read_timeout
        self.deadline = _deadline(read_timeout)
        self.provider = provider
        self.request_id = request_id
        self.cancelled = cancelled
        # What ``http.client`` had read past the head: fed first, on the reading thread.
        self.buffered = buffered
        self.done = threading.Event()
        self.error: BaseException | None = None

    def interrupted(self, cause: str) -> Exception:
        """A transport failure: ``Cancelled`` when a cancel caused it, else retryable."""
        if self.cancelled():
            return Cancelled("the stream was cancelled", provider=self.provider)
        return StreamInterrupted(
            f"the response stream {cause} before it finished",
            provider=self.provider,
            request_id=self.request_id,
        )

    def feed(self, data: bytes) -> bool:
        """Frame and decode ``data`` (``b""``: the connection closed); True when finished."""
        framing = self.framing
        malformed = None
        if not data:
            if not (framing.complete or framing.until_close):
                raise self.interrupted("was cut")
            framing.complete = True  # a body delimited by the close ends with it
        elif not framing.complete:
            try:
                framing.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                # What follows the body's end is not its business (the connection is dropped).
                if not framing.complete:
                    malformed = exc
        pieces = framing.pieces
        if pieces:
            framing.pieces = []
            # The pieces framed before a malformation count, as they arrived.
            for piece in pieces:
                if self.on_data(self._decode(piece)):
                    return True
        if malformed is not None:
            raise self.interrupted("was malformed") from malformed
        if framing.complete:
            rest = self._flush()
            if rest and self.on_data(rest):
                return True
            self.on_end()
            return True
        return False

    def _decode(self, data: bytes) -> bytes:
        if self.decompressor is None:
            return data
        try:
            out = self.decompressor.decompress(data)
            # A gzip body may hold several members one after another.
            while self.decompressor.eof and self.decompressor.unused_data:
                rest = self.decompressor.unused_data
                self.decompressor = _gunzip()
                out += self.decompressor.decompress(rest)
        except zlib.error as exc:
            raise self.interrupted("could not be decoded") from exc
        return out

    def _flush(self) -> bytes:
        if self.decompressor is None:
            return b""
        try:
            return self.decompressor.flush()
        except zlib.error as exc:
            raise self.interrupted("could not be decoded") from exc


def _gunzip():
    return zlib.decompressobj(16 + zlib.MAX_WBITS)


def _deadline(read_timeout: float | None) -> float | None:
    return None if read_timeout is None else time.monotonic() + read_timeout


class Framing:
    """A response body's framing: ``httptools``' response parser fed a head with only the
    framing headers, then the body's bytes; the body's pieces and its end collect here (the
    parser's callbacks)."""

    __slots__ = ("complete", "parser", "pieces", "until_close")

    def __init__(self, *, until_close: bool):
        # Neither length nor chunks: the body ends when the connection closes (RFC 9112 6.3),
        # which the caller tells (``httptools`` has no call for the end of the input).
        self.until_close = until_close
        self.complete = False
        self.pieces: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        if not self.complete:  # nothing after the body's end belongs to it
            self.pieces.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


def framing_for(*, method: str, version: int, headers) -> Framing | None:
    """The framing of a response body whose head had these framing headers, positioned at the
    body's start; None when the reader does not frame it (the caller reads it itself): a HEAD
    request's, a transfer coding other than chunked, a malformed ``Content-Length``."""
    if method.upper() == "HEAD":
        return None
    transfer_encoding = headers.get("transfer-encoding")
    content_length = headers.get("content-length")
    head = ["HTTP/1.0 200 OK" if version == 10 else "HTTP/1.1 200 OK"]
    if transfer_encoding is not None:
        if transfer_encoding.strip().lower() != "chunked":
            return None
        # Chunked wins over a Content-Length (RFC 9112 6.3), which is not passed on.
        head.append("transfer-encoding: chunked")
    elif content_length is not None:
        head.append(f"content-length: {content_length}")
    framing = Framing(until_close=transfer_encoding is None and content_length is None)
    try:
        framing.parser.feed_data(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    except (httptools.HttpParserError, UnicodeEncodeError):
        return None
    return framing


class StreamReader:
    """The process's reading thread (``reader()``); ``read(body)`` waits for the body's end."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._arriving: list[Body] = []
        self._bodies: dict[int, Body] = {}
        # Bodies whose turn ended with data left: read again without waiting for a select.
        self._again: list[Body] = []
        self._next_sweep = 0.0
        self._thread = threading.Thread(target=self._run, name="stream-reader", daemon=True)
        self._thread.start()

    def read(self, body: Body) -> None:
        """Pump ``body`` (its ``buffered`` bytes first) to its end.

        Blocks the calling thread until then; raises what ended it, if not the end itself.
        """
        with self._lock:
            self._arriving.append(body)
        self._wake()
        body.done.wait()
        if body.error is not None:
            raise body.error

    # -- the reading thread ------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        while True:
            try:
                self._turn()
            except Exception as exc:  # a bug here must not leave callers waiting forever
                logger.exception("the stream reader failed; failing its streams")
                for body in list(self._bodies.values()):
                    self._finish(body, exc)

    def _turn(self) -> None:
        timeout = None
        if self._again:
            timeout = 0.0
        elif self._bodies:
            timeout = max(0.0, self._next_sweep - time.monotonic())
        again, self._again = self._again, []
        ready = [key.data for key, _mask in self._selector.select(timeout)]
        for body in again:
            if body not in ready:
                ready.append(body)
        for body in ready:
            if body is None:
                self._take_arrivals()
            elif self._bodies.get(body.fd) is body:
                self._read(body)
        if self._bodies and time.monotonic() >= self._next_sweep:
            self._sweep()
        if ready and len(self._bodies) >= GATHER_BODIES:
            time.sleep(GATHER_SECONDS)

    def _take_arrivals(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            arriving, self._arriving = self._arriving, []
        for body in arriving:
            body.deadline = _deadline(body.read_timeout)
            if body.buffered and self._feed(body, body.buffered, registered=False):
                continue
            self._bodies[body.fd] = body
            self._selector.register(body.fd, selectors.EVENT_READ, body)
            # What arrived before the registration is reported by the first select: epoll
            # reports a socket that is readable now, not only data that arrives later.

    def _read(self, body: Body) -> None:
        for _ in range(READS_PER_TURN):
            try:
                data = body.sock.recv(READ_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except ssl.SSLZeroReturnError:
                data = b""  # TLS's close_notify: the end of a body delimited by the close
            except OSError:
                self._finish(body, body.interrupted("was cut"))
                return
            if not data:
                if not self._feed(body, data, registered=True):
                    self._finish(body, body.interrupted("was cut"))
                return
            if body.read_timeout is not None:
                body.deadline = time.monotonic() + body.read_timeout
            if self._feed(body, data, registered=True):
                return
            if len(data) < READ_SIZE and not body.tls:
                # The kernel had no more (a token is one small chunk): no recv that fails
                # with EAGAIN per token; the next select reports what arrives meanwhile.
                return
        # Its turn is over with data left. TLS may hold decrypted bytes that no select reports.
        self._again.append(body)

    def _feed(self, body: Body, data: bytes, *, registered: bool) -> bool:
        """Feed ``data``; True when the body finished (then its outcome is set)."""
        try:
            finished = body.feed(data)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self._finish(body, exc, registered=registered)
            return True
        if finished:
            self._finish(body, None, registered=registered)
        return finished

    def _finish(self, body: Body, error: BaseException | None, *, registered: bool = True) -> None:
        if registered and self._bodies.pop(body.fd, None) is not None:
            # Unregistered before the waiting thread closes the socket (and its number is
            # reused): by number, which works on a socket shut down meanwhile.
            self._selector.unregister(body.fd)
        body.error = error
        body.done.set()

    def _sweep(self) -> None:
        now = time.monotonic()
        self._next_sweep = now + SWEEP_SECONDS
        for body in list(self._bodies.values()):
            if body.cancelled():
                self._finish(body, Cancelled("the stream was cancelled", provider=body.provider))
            elif body.deadline is not None and now >= body.deadline:
                self._finish(body, body.interrupted("stalled past the read timeout"))


_reader: StreamReader | None = None
_reader_pid: int | None = None
_reader_lock = threading.Lock()


def reader() -> StreamReader:
    """This process's reader, started on first use (again in a forked child)."""
    global _reader, _reader_pid
    with _reader_lock:
        if _reader is None or _reader_pid != os.getpid():
            _reader, _reader_pid = StreamReader(), os.getpid()
        return _reader
