"""The adapter against real loopback servers: retries, Retry-After, timeouts, typed errors."""

import contextlib
import socket
import threading
import time

import pytest
import urllib3

from integrations.adapter import ApiAdapter
from integrations.errors import (
    AuthError,
    BadRequest,
    Cancelled,
    NotFound,
    ProviderError,
    RateLimited,
    Unavailable,
)
from tests.fakes import fixtures
from tests.fakes.base import Behaviour

fake_ollama = fixtures.fake_ollama


class Sleeps(list):
    """Records the waits the adapter asked for instead of sleeping."""

    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def adapter(fake_ollama, sleeps):
    return ApiAdapter(
        provider="ollama",
        base_url=fake_ollama.url,
        sleep=sleeps,
        max_retries=2,
        retry_after_cap=60,
        connect_timeout=1,
        read_timeout=2,
    )


def version_requests(fake):
    return [r for r in fake.requests if r.path == "/api/version"]


def test_success_returns_json_and_reuses_the_connection(adapter, fake_ollama):
    for _ in range(3):
        assert adapter.request_json("GET", "/api/version") == {"version": "0.6.5"}
    assert fake_ollama.total_connections == 1


def test_5xx_then_success_is_retried_with_backoff(adapter, fake_ollama, sleeps):
    fake_ollama.enqueue(Behaviour(status=503), Behaviour(status=500))
    assert adapter.request_json("GET", "api/version")["version"] == "0.6.5"
    assert len(version_requests(fake_ollama)) == 3
    # Exponential with jitter: attempt n waits within [base*2^n/2, base*2^n].
    assert 0.25 <= sleeps[0] <= 0.5
    assert 0.5 <= sleeps[1] <= 1.0


def test_retries_are_bounded_then_the_error_surfaces(adapter, fake_ollama, sleeps):
    fake_ollama.enqueue(*[Behaviour(status=502, error="bad gateway")] * 5)
    with pytest.raises(ProviderError) as info:
        adapter.request("GET", "api/version")
    assert len(version_requests(fake_ollama)) == 3  # 1 + HTTP_MAX_RETRIES
    assert len(sleeps) == 2
    assert info.value.status == 502
    assert info.value.message == "bad gateway"
    assert info.value.retryable


@pytest.mark.parametrize("status", [408, 409])
def test_408_and_409_are_retried(adapter, fake_ollama, status):
    fake_ollama.enqueue(Behaviour(status=status))
    adapter.request("GET", "api/version")
    assert len(version_requests(fake_ollama)) == 2


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequest),
        (401, AuthError),
        (403, AuthError),
        (404, NotFound),
        (413, BadRequest),
        (422, BadRequest),
        (498, Unavailable),
    ],
)
def test_client_errors_are_never_retried(adapter, fake_ollama, sleeps, status, error_class):
    fake_ollama.enqueue(Behaviour(status=status, error="no"))
    with pytest.raises(error_class):
        adapter.request("GET", "api/version")
    assert len(version_requests(fake_ollama)) == 1
    assert sleeps == []


def test_429_waits_at_least_retry_after_then_succeeds(adapter, fake_ollama, sleeps):
    fake_ollama.enqueue(Behaviour(status=429, headers={"Retry-After": "3"}))
    assert adapter.request_json("GET", "api/version")["version"]
    assert sleeps == [3.0]


def test_retry_after_ms_is_honoured(adapter, fake_ollama, sleeps):
    fake_ollama.enqueue(Behaviour(status=429, headers={"retry-after-ms": "1500"}))
    adapter.request("GET", "api/version")
    assert sleeps[0] >= 1.5


def test_retry_after_beyond_the_cap_surfaces_as_rate_limited(adapter, fake_ollama, sleeps):
    fake_ollama.enqueue(Behaviour(status=429, error="slow down", headers={"Retry-After": "120"}))
    with pytest.raises(RateLimited) as info:
        adapter.request("GET", "api/version")
    assert info.value.retry_after == 120.0
    assert info.value.retryable
    assert sleeps == []  # no silent short retry
    assert len(version_requests(fake_ollama)) == 1


def test_503_with_a_long_retry_after_also_surfaces(adapter, fake_ollama, sleeps):
    fake_ollama.enqueue(Behaviour(status=503, headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as info:
        adapter.request("GET", "api/version")
    assert info.value.status == 503
    assert sleeps == []


def test_429_after_all_retries_is_rate_limited(adapter, fake_ollama):
    fake_ollama.enqueue(*[Behaviour(status=429, headers={"Retry-After": "1"})] * 3)
    with pytest.raises(RateLimited) as info:
        adapter.request("GET", "api/version")
    assert info.value.retry_after == 1.0
    assert len(version_requests(fake_ollama)) == 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connection_is_unavailable_after_retries(sleeps):
    url = f"http://127.0.0.1:{free_port()}"
    adapter = ApiAdapter(provider="ollama", base_url=url, sleep=sleeps, unreachable_hint="Fix it.")
    with pytest.raises(Unavailable) as info:
        adapter.request("GET", "api/version")
    assert len(sleeps) == 2
    assert url in info.value.message
    assert "connection refused" in info.value.message
    assert info.value.message.endswith("Fix it.")
    assert info.value.status is None


@contextlib.contextmanager
def unaccepting_port():
    """A port whose accept queue is full: the next SYN is dropped, so connect() times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    try:
        yield port
    finally:
        filler.close()
        server.close()


def test_connect_timeout_is_unavailable_and_retried(sleeps):
    with unaccepting_port() as port:
        adapter = ApiAdapter(
            provider="http", base_url=f"http://127.0.0.1:{port}", sleep=sleeps, connect_timeout=0.2
        )
        started = time.monotonic()
        with pytest.raises(Unavailable, match="no connection within 0.2 s"):
            adapter.request("GET", "x", max_retries=1)
        assert time.monotonic() - started < 2
    assert len(sleeps) == 1


def test_read_timeout_is_a_retryable_unavailable(fake_ollama, sleeps):
    fake_ollama.enqueue(Behaviour(delay=1.0), Behaviour(delay=1.0))
    adapter = ApiAdapter(
        provider="ollama", base_url=fake_ollama.url, sleep=sleeps, read_timeout=0.2, max_retries=1
    )
    with pytest.raises(Unavailable, match="read timeout of 0.2 s") as info:
        adapter.request("GET", "api/version")
    assert info.value.retryable
    assert len(version_requests(fake_ollama)) == 2


def test_per_call_timeout_overrides_the_default(fake_ollama, sleeps):
    fake_ollama.enqueue(Behaviour(delay=0.5))
    adapter = ApiAdapter(
        provider="ollama", base_url=fake_ollama.url, sleep=sleeps, read_timeout=0.1
    )
    assert adapter.request_json("GET", "api/version", timeout=3)["version"]


def test_url_for_keeps_the_base_path():
    adapter = ApiAdapter(provider="groq", base_url="https://api.groq.com/openai/v1/")
    assert adapter.url_for("/models") == "https://api.groq.com/openai/v1/models"
    assert adapter.url_for("chat/completions") == "https://api.groq.com/openai/v1/chat/completions"


def test_plain_text_error_body_becomes_the_message(fake_ollama):
    adapter = ApiAdapter(provider="ollama", base_url=fake_ollama.url)
    with pytest.raises(NotFound) as info:  # Go's plain-text 404 for an unknown path
        adapter.request_json("GET", "nope")
    assert info.value.message == "404 page not found"


def test_cancel_ends_a_request_waiting_for_its_response_headers(fake_ollama):
    # A server that takes 30 s to answer (Ollama loading a model sends no headers meanwhile).
    fake_ollama.enqueue(Behaviour(delay=30))
    adapter = ApiAdapter(provider="ollama", base_url=fake_ollama.url, read_timeout=60)
    threading.Timer(0.3, adapter.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        adapter.request("GET", "api/version")
    assert time.monotonic() - started < 1.0
    assert len(version_requests(fake_ollama)) == 1  # not retried
    assert fake_ollama.wait_for_idle(timeout=3)
    with pytest.raises(Cancelled):  # the adapter is done
        adapter.request("GET", "api/version")


def test_cancel_while_the_connection_is_being_made_ends_the_request(fake_ollama, monkeypatch):
    # The race CI once lost: cancel() ran after the connection object existed but before it
    # had a socket, so it shut nothing down and the request waited for the slow answer.
    fake_ollama.enqueue(Behaviour(delay=5))
    adapter = ApiAdapter(provider="ollama", base_url=fake_ollama.url, read_timeout=60)
    connect = urllib3.connection.HTTPConnection.connect

    def cancel_then_connect(conn):
        adapter.cancel()
        connect(conn)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", cancel_then_connect)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        adapter.request("GET", "api/version")
    assert time.monotonic() - started < 1.0


def test_cancel_ends_a_retry_wait(fake_ollama):
    fake_ollama.enqueue(Behaviour(status=503, headers={"Retry-After": "30"}))
    adapter = ApiAdapter(provider="ollama", base_url=fake_ollama.url)
    threading.Timer(0.3, adapter.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        adapter.request("GET", "api/version")
    assert time.monotonic() - started < 1.0
    assert len(version_requests(fake_ollama)) == 1
