"""The process's one reading thread for provider streams (``integrations.reader``), through the
real clients over real sockets: the fakes, and a raw server for framings they never send."""

import contextlib
import json
import socket
import ssl
import threading
import time
import zlib

import pytest

from integrations import reader
from integrations.errors import Cancelled, StreamInterrupted
from integrations.groq import GroqClient
from integrations.ollama import OllamaClient
from tests.certificates import make_certificate
from tests.fakes import fixtures
from tests.fakes.base import Behaviour
from tests.fakes.groq import TEST_KEY

fake_ollama = fixtures.fake_ollama
fake_groq = fixtures.fake_groq
HI = [{"role": "user", "content": "hi"}]
MODEL = "llama3.2"
GROQ_MODEL = "llama-3.3-70b-versatile"


def pump(stream) -> tuple[list, set[str]]:
    """The stream's items, and the names of the threads that handed them over."""
    items, threads = [], set()

    def on_item(item):
        threads.add(threading.current_thread().name)
        items.append(item)

    stream.pump(on_item)
    return items, threads


def ndjson(*objects) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


BODY = ndjson(
    {"model": "m", "message": {"role": "assistant", "content": "fr"}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": "amed"}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "eval_count": 2},
)


class RawServer:
    """Answers every request on a connection with ``response`` (exact bytes, written in
    ``pieces`` byte steps), then closes the connection when ``close`` is set."""

    def __init__(
        self,
        response: bytes,
        *,
        pieces: int | None = None,
        close: bool = True,
        tls: ssl.SSLContext | None = None,
    ):
        self.response, self.pieces, self.close, self.tls = response, pieces, close, tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn, contextlib.suppress(OSError):
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")[1:]
                    if line.lower().startswith(b"content-length")
                )
            )
            while len(body) < length:
                body += conn.recv(65536)
            step = self.pieces or len(self.response)
            for i in range(0, len(self.response), step):
                conn.sendall(self.response[i : i + step])
                if self.pieces:
                    time.sleep(0.001)
            if not self.close:
                time.sleep(30)

    def stop(self):
        self.listener.close()


@pytest.fixture
def raw_server():
    servers = []

    def start(response, **kwargs):
        server = RawServer(response, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_every_stream_of_the_process_is_read_by_one_thread(fake_ollama):
    fake_ollama.reply = "one two three four five six"
    for _ in range(12):
        fake_ollama.enqueue(Behaviour(token_interval=0.01))
    results, errors = [], []

    def run():
        client = OllamaClient(base_url=fake_ollama.url, read_timeout=10)
        try:
            results.append(pump(client.chat_stream(model=MODEL, messages=HI)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=run) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    assert len(results) == 12
    for items, names in results:
        assert "".join(items[:-1]) == fake_ollama.reply
        assert items[-1].completion_tokens is not None
        assert names == {"stream-reader"}
    assert [t.name for t in threading.enumerate()].count("stream-reader") == 1


def test_a_stalled_stream_does_not_hold_the_others(fake_ollama):
    fake_ollama.enqueue(Behaviour(stall_after=1, stall_for=10))
    stalled_client = OllamaClient(base_url=fake_ollama.url, read_timeout=1.5)
    outcome = {}

    def stall():
        try:
            pump(stalled_client.chat_stream(model=MODEL, messages=HI))
        except StreamInterrupted as exc:
            outcome["stalled"] = (exc, time.monotonic())

    stalled = threading.Thread(target=stall)
    stalled.start()
    time.sleep(0.2)  # the first stream is registered and waiting
    client = OllamaClient(base_url=fake_ollama.url, read_timeout=10)
    fake_ollama.enqueue(Behaviour(token_interval=0.01))
    started = time.monotonic()
    items, _ = pump(client.chat_stream(model=MODEL, messages=HI))
    assert "".join(items[:-1]) == fake_ollama.reply
    assert time.monotonic() - started < 1.0
    stalled.join(timeout=10)
    exc, ended = outcome["stalled"]
    assert "stalled past the read timeout" in str(exc)
    assert ended - started < 3.0
    stalled_client.close()
    client.close()


@pytest.mark.parametrize(
    ("name", "response", "kwargs"),
    [
        (
            "content-length, with the head in one write",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
            {"close": False},
        ),
        (
            "until the connection closes",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"
            + BODY[: BODY.rindex(b"\n")],  # the final line without its newline, then the close
            {},
        ),
        (
            "chunked, cut anywhere between reads",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x;ext=1\r\n%s\r\n" % (len(line), line) for line in BODY.splitlines(True))
            + b"0\r\nX-Trailer: yes\r\n\r\n",
            {"pieces": 3, "close": False},
        ),
        (
            "HTTP/1.0, until the connection closes",
            b"HTTP/1.0 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n" + BODY,
            {},
        ),
        (
            "content-length, the final line without its newline, then bytes past the body",
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
            % (len(BODY) - 1, BODY[:-1] + b"\nHTTP/1.1 200 OK\r\n\r\n{}\n"),
            {"close": False},
        ),
        (
            "chunked beside a content-length: the chunks frame it",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in BODY.splitlines(True))
            + b"0\r\n\r\n",
            {"close": False},
        ),
    ],
)
def test_framings(raw_server, name, response, kwargs):
    server = raw_server(response, **kwargs)
    client = OllamaClient(base_url=server.url, read_timeout=5)
    items, threads = pump(client.chat_stream(model=MODEL, messages=HI))
    assert items[:-1] == ["fr", "amed"], name
    assert items[-1].completion_tokens == 2
    assert threads == {"stream-reader"}
    client.close()


@pytest.mark.parametrize("gathering", [True, False])
def test_the_reader_gathers_what_arrives_between_its_turns(raw_server, monkeypatch, gathering):
    # A body written in ~150 small pieces, a millisecond apart: after each turn that read, the
    # reader sleeps GATHER_SECONDS, and its next read takes every piece that came meanwhile;
    # unless fewer than GATHER_BODIES bodies are open (one stream gains nothing from the pause
    # and its tokens would wait it): then it reads each piece as it comes.
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in BODY.splitlines(True))
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    pieces = len(response) // 2
    feeds = []
    feed = reader.Body.feed

    def counted(self, data):
        feeds.append(len(data))
        return feed(self, data)

    monkeypatch.setattr(reader.Body, "feed", counted)
    monkeypatch.setattr(reader, "GATHER_SECONDS", 0.05)
    monkeypatch.setattr(reader, "GATHER_BODIES", 1 if gathering else 2)
    server = raw_server(response, pieces=2, close=False)
    client = OllamaClient(base_url=server.url, read_timeout=5)
    items, threads = pump(client.chat_stream(model=MODEL, messages=HI))
    assert items[:-1] == ["fr", "amed"]
    assert threads == {"stream-reader"}
    if gathering:
        assert len(feeds) < pieces / 4, (len(feeds), pieces)
    else:
        assert len(feeds) > pieces / 2, (len(feeds), pieces)
    client.close()


def test_a_tls_body_larger_than_a_turn_is_read_whole(raw_server, tmp_path, monkeypatch):
    # Groq is HTTPS: a TLS socket may hold decrypted bytes that no select reports, and a body
    # sent in one burst is read over several turns of the reader (8 reads of 64 KiB each).
    cert, key = make_certificate(tmp_path, "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    words = [f"w{i:04d}" + "x" * 1000 for i in range(1000)]
    body = ndjson(
        *({"model": "m", "message": {"content": word}, "done": False} for word in words),
        {"model": "m", "message": {"content": ""}, "done": True, "eval_count": len(words)},
    )
    server = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        close=False,
        tls=context,
    )
    client = OllamaClient(base_url=server.url, read_timeout=10)
    items, threads = pump(client.chat_stream(model=MODEL, messages=HI))
    assert items[:-1] == words
    assert items[-1].completion_tokens == len(words)
    assert threads == {"stream-reader"}
    client.close()


@pytest.mark.parametrize(
    "response",
    [
        # The head, then the connection closes: no chunk at all.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        # Closed inside a chunk.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s" % (len(BODY), BODY[:20]),
        # Closed before Content-Length bytes came.
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY) + 10, BODY[:20]),
    ],
    ids=["chunked, no chunk", "chunked, inside a chunk", "content-length, short"],
)
def test_a_body_cut_before_its_framing_ended_is_a_retryable_interruption(raw_server, response):
    server = raw_server(response)
    client = OllamaClient(base_url=server.url, read_timeout=5)
    with pytest.raises(StreamInterrupted, match="was cut") as info:
        pump(client.chat_stream(model=MODEL, messages=HI))
    assert info.value.retryable
    client.close()


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("HEAD", {}),
        ("POST", {"transfer-encoding": "gzip, chunked"}),
        ("POST", {"content-length": "12x"}),
    ],
)
def test_framings_the_reader_does_not_take(method, headers):
    # The calling thread reads these itself (``ResponseStream.pump``'s fallback).
    assert reader.framing_for(method=method, version=11, headers=headers) is None


def test_what_was_framed_before_a_malformed_chunk_is_handed_over_first(raw_server):
    first = BODY.splitlines(True)[0]
    server = raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\nzz\r\n"
        % (len(first), first)
    )
    client = OllamaClient(base_url=server.url, read_timeout=5)
    items = []
    with pytest.raises(StreamInterrupted, match="was malformed"):
        client.chat_stream(model=MODEL, messages=HI).pump(items.append)
    assert items == ["fr"]
    client.close()


def test_malformed_chunk_framing_is_a_retryable_interruption(raw_server):
    server = raw_server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n")
    client = OllamaClient(base_url=server.url, read_timeout=5)
    with pytest.raises(StreamInterrupted) as info:
        pump(client.chat_stream(model=MODEL, messages=HI))
    assert info.value.retryable
    client.close()


def test_an_encoding_the_reader_does_not_undo_is_read_in_the_calling_thread(fake_groq):
    plain = (
        b'data: {"choices":[{"delta":{"content":"zipped"}}]}\n\n'
        b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    fake_groq.enqueue(
        Behaviour(raw_stream=zlib.compress(plain), headers={"Content-Encoding": "deflate"})
    )
    client = GroqClient(api_key=TEST_KEY, base_url=fake_groq.base_url)
    items, threads = pump(client.chat_stream(model=GROQ_MODEL, messages=HI))
    assert items[0] == "zipped"
    assert items[-1].finish_reason == "stop"
    assert threads == {threading.current_thread().name}
    client.close()


def test_what_a_callback_raises_ends_the_stream_and_reaches_the_caller(fake_ollama):
    fake_ollama.enqueue(Behaviour(token_interval=0.05))
    client = OllamaClient(base_url=fake_ollama.url, read_timeout=10)
    seen = []

    def on_item(item):
        seen.append(item)
        if len(seen) == 2:
            raise ValueError("enough")

    with pytest.raises(ValueError, match="enough"):
        client.chat_stream(model=MODEL, messages=HI).pump(on_item)
    assert len(seen) == 2
    assert fake_ollama.wait_for_idle(timeout=3), "the stream's connection was left open"
    client.close()


def test_closing_a_pumped_stream_from_another_thread_cancels_it(fake_ollama):
    fake_ollama.enqueue(Behaviour(stall_after=1, stall_for=30))
    client = OllamaClient(base_url=fake_ollama.url, read_timeout=60)
    stream = client.chat_stream(model=MODEL, messages=HI)
    threading.Timer(0.3, stream._stream.close).start()  # as `with stream:` would on exit
    started = time.monotonic()
    with pytest.raises(Cancelled):
        pump(stream)
    assert time.monotonic() - started < 1.0
    assert fake_ollama.wait_for_idle(timeout=3)
    client.close()
