"""canvas/handlers.py: Django's ASGI handler with a request's sync work on one reused thread."""

import asyncio
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.testing import HttpCommunicator
from django.core import signals

from canvas import handlers
from canvas.handlers import CanvasASGIHandler
from tests.canvas import handler_urls


@pytest.fixture
def app(settings):
    settings.ROOT_URLCONF = "tests.canvas.handler_urls"
    handler_urls.seen.clear()
    handler_urls.together.reset()
    return CanvasASGIHandler()


@pytest.fixture
def signal_threads():
    seen = []

    def started(**kwargs):
        seen.append(("started", threading.get_ident()))

    def finished(**kwargs):
        seen.append(("finished", threading.get_ident()))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield seen
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)


def scope(method, path):
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
    }


def request(app, path):
    return HttpCommunicator(app, "GET", path, headers=[(b"host", b"testserver")])


def get(app, path):
    return asyncio.run(request(app, path).get_response(timeout=5))


def test_a_request_runs_its_signals_and_view_on_one_thread_not_the_loops(app, signal_threads):
    loop_thread = threading.get_ident()

    response = get(app, "/where/")

    assert response["status"] == 200
    threads = {ident for _, ident in signal_threads + handler_urls.seen}
    assert [name for name, _ in signal_threads] == ["started", "finished"]
    assert len(threads) == 1
    assert threads != {loop_thread}


def test_the_next_request_reuses_the_thread(app):
    async def three():
        for _ in range(3):
            response = await request(app, "/where/").get_response(timeout=5)
            assert response["status"] == 200

    asyncio.run(three())

    assert len({ident for _, ident in handler_urls.seen}) == 1


def test_concurrent_requests_run_side_by_side(app):
    # Each view waits for the other: run one after the other, they would time out.
    async def two():
        return await asyncio.gather(
            *(request(app, "/both/").get_response(timeout=10) for _ in range(2))
        )

    responses = asyncio.run(two())

    assert [r["status"] for r in responses] == [200, 200]
    assert [r["body"] for r in responses] == [b"both", b"both"]


def test_idle_threads_beyond_the_bound_are_shut_down(app, monkeypatch):
    monkeypatch.setattr(handlers, "IDLE_THREADS_KEPT", 1)

    async def two():
        await asyncio.gather(*(request(app, "/both/").get_response(timeout=10) for _ in range(2)))

    asyncio.run(two())

    assert len(app._idle) == 1


# Django warns that it reads a sync iterator whole to serve it under ASGI (its handler too).
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_a_streaming_response_is_sent_whole_then_closed_on_the_request_thread(app, signal_threads):
    async def stream():
        communicator = ApplicationCommunicator(app, scope("GET", "/stream/"))
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(timeout=5)
        body = b""
        while True:
            message = await communicator.receive_output(timeout=5)
            body += message.get("body", b"")
            if not message.get("more_body"):
                await communicator.wait(timeout=5)  # the close comes after the last message
                return start["status"], body

    assert asyncio.run(stream()) == (200, b"one two three")
    assert [name for name, _ in signal_threads] == ["started", "finished"]
    # The iterator is read and the response closed on the request's thread, as its signals
    # (the database connection's cleanup) ran.
    threads = {ident for _, ident in signal_threads + handler_urls.seen}
    assert len(threads) == 1


def test_a_client_gone_before_its_body_ended_gets_nothing_and_no_error(app, signal_threads):
    async def gone():
        communicator = ApplicationCommunicator(app, scope("POST", "/where/"))
        await communicator.send_input({"type": "http.request", "body": b"{", "more_body": True})
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(timeout=5)
        assert await communicator.receive_nothing()

    asyncio.run(gone())

    assert signal_threads == []
    assert handler_urls.seen == []


def test_it_serves_http_only(app):
    with pytest.raises(ValueError, match="not websocket"):
        asyncio.run(app({"type": "websocket"}, None, None))
