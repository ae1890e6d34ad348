"""A real, threaded HTTP/1.1 server on loopback that the provider fakes build on.

Each fake is a ``FakeServer`` subclass with its routes. Tests script it per request with
``Behaviour`` objects (``fake.enqueue(...)``): a status and error body, headers, a slow first
token, a token rate, a mid-stream error, a dropped connection, a stall, a missing terminator.
The server counts connections (``active_connections``, ``total_connections``) so tests can
prove that a client reused or closed one, and records every request (``fake.requests``).
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """How the fake answers one request. Unset fields mean "like the real service"."""

    status: int = 200
    error: str | None = None  # the provider's error message (status >= 400)
    error_code: str | None = None
    error_type: str | None = None
    headers: dict = field(default_factory=dict)
    reply: str | None = None  # the assistant's text; split into word tokens
    first_token_delay: float = 0.0
    token_interval: float = 0.0
    error_after: int | None = None  # send an in-stream error after N tokens
    drop_after: int | None = None  # cut the connection after N tokens (no terminator)
    stall_after: int | None = None  # stop sending after N tokens and hold the connection
    stall_for: float = 30.0
    omit_terminator: bool = False  # end the body cleanly but without done / [DONE]
    byte_by_byte: bool = False  # write the stream one byte per TCP send
    delay: float = 0.0  # before the status line (a slow non-streamed answer)
    raw_stream: bytes | None = None  # exact stream body bytes (protocol edge cases)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body) if self.body else None


def tokens_of(text: str) -> list[str]:
    """Split like a tokenizer would, keeping the spaces: "a b" -> ["a", " b"]."""
    return re.findall(r"\s*\S+", text) or [text]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, fake):
        self.fake = fake
        super().__init__(address, handler)

    def process_request_thread(self, request, client_address):
        with self.fake.lock:
            self.fake.active_connections += 1
            self.fake.total_connections += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.fake.lock:
                self.fake.active_connections -= 1

    def handle_error(self, request, client_address):
        # A client that hangs up mid-request is a scenario under test, not a server fault.
        pass


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        pass

    @property
    def fake(self) -> FakeServer:
        return self.server.fake

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        recorded = RecordedRequest(self.command, self.path, dict(self.headers), body)
        with self.fake.lock:
            self.fake.requests.append(recorded)
        behaviour = self.fake.next_behaviour(self.path)
        if behaviour.delay and not self.wait(behaviour.delay):
            return
        try:
            self.fake.handle(self, recorded, behaviour)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _dispatch  # noqa: N815

    # -- writing helpers used by the fakes ------------------------------------------------------

    def send_json(self, status: int, payload, *, headers=None, content_type=None):
        data = json.dumps(payload).encode()
        self.send_bytes(status, data, content_type or "application/json; charset=utf-8", headers)

    def send_bytes(self, status: int, data: bytes, content_type: str, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, status: int, content_type: str, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()

    def write_chunk(self, data: bytes, *, byte_by_byte: bool = False):
        if not data:
            return
        if byte_by_byte:
            # One HTTP chunk per byte: multi-byte characters arrive split across reads.
            for i in range(len(data)):
                self.wfile.write(b"1\r\n" + data[i : i + 1] + b"\r\n")
                time.sleep(0.0005)
            return
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")

    def drop(self):
        """Cut the connection mid-body, as a crashed server or proxy would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def client_gone(self) -> bool:
        """True when the client hung up (readable with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def wait(self, seconds: float) -> bool:
        """Sleep like a busy model, but notice (as Ollama and Groq do) a client that left."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.fake.stop.wait(min(0.02, max(deadline - time.monotonic(), 0))):
                return False
            if self.client_gone():
                self.close_connection = True
                return False
        return True

    def stall(self, behaviour: Behaviour):
        self.wait(behaviour.stall_for)
        self.close_connection = True

    def before_token(self, behaviour: Behaviour, index: int) -> bool:
        """What the scripted behaviour does before streamed token ``index``: drop or stall the
        connection there, or wait the token interval. False when the stream must end here."""
        if behaviour.drop_after is not None and index == behaviour.drop_after:
            self.drop()
            return False
        if behaviour.stall_after is not None and index == behaviour.stall_after:
            self.stall(behaviour)
            return False
        return not (index and behaviour.token_interval and not self.wait(behaviour.token_interval))


class FakeServer:
    """Start with ``start()`` (or as a context manager); ``url`` is ``http://127.0.0.1:PORT``."""

    handler_class = FakeHandler

    def __init__(self):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.requests: list[RecordedRequest] = []
        self.script: deque[tuple[str | None, Behaviour]] = deque()
        self.active_connections = 0
        self.total_connections = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeServer:
        self._server = _Server(("127.0.0.1", 0), self.handler_class, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self):
        self.stop.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting -----------------------------------------------------------------------------

    def enqueue(self, *behaviours: Behaviour, path: str | None = None):
        """The next requests (to ``path``, or to any path) answer with these, in order."""
        with self.lock:
            for behaviour in behaviours:
                self.script.append((path, behaviour))

    def next_behaviour(self, path: str) -> Behaviour:
        with self.lock:
            for index, (wanted, behaviour) in enumerate(self.script):
                if wanted is None or path.split("?")[0] == wanted:
                    del self.script[index]
                    return behaviour
        return Behaviour()

    def wait_for_idle(self, timeout: float = 5.0) -> bool:
        """True once no connection is open (the client closed or the handler ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.active_connections == 0:
                return True
            time.sleep(0.01)
        return False

    def handle(self, handler: FakeHandler, request: RecordedRequest, behaviour: Behaviour):
        raise NotImplementedError
