"""canvas/daphne_server.py: autobahn's per-frame debug-log arguments are built lazily; the
objects made at startup are frozen before the server serves; the server's loop is uvloop's
unless DAPHNE_EVENT_LOOP says otherwise; a text frame goes out as autobahn's prepared message,
the same bytes as sendMessage's, written at once where sendMessage need not take it, and the
application may call that write itself; Twisted's own access log line is made only where
Daphne keeps Twisted's log."""

import asyncio
import collections
import gc
import os
import subprocess
import sys

import autobahn.twisted.websocket
import autobahn.util
import autobahn.websocket.protocol
import click
import pytest
from autobahn.exception import PayloadExceededError
from autobahn.websocket.protocol import TrafficStats
from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
from daphne.http_protocol import HTTPFactory
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

from canvas.core import realtime
from canvas.daphne_server import (
    CanvasServer,
    PreparedWebSocketProtocol,
    RawBodyHTTPFactory,
    lazy_highlights,
    use_event_loop,
)
from tests.live import BASE_DIR


def test_autobahn_highlights_render_as_before_but_only_when_formatted(monkeypatch):
    for module in (autobahn.websocket.protocol, autobahn.twisted.websocket):
        monkeypatch.setattr(module, "hltype", module.hltype)  # restored after the test
        monkeypatch.setattr(module, "hlval", module.hlval)
    lazy_highlights()
    lazy_highlights()  # idempotent

    hltype, hlval = autobahn.websocket.protocol.hltype, autobahn.twisted.websocket.hlval
    method = AutobahnProtocol.sendData
    assert f"{hltype(method)}" == autobahn.util.hltype(method)
    assert f"{hlval(42)}" == autobahn.util.hlval(42)
    assert str(hlval("peer", color="green", bold=False)) == autobahn.util.hlval(
        "peer", color="green", bold=False
    )

    styled = []
    monkeypatch.setattr(click, "style", lambda *a, **k: styled.append(a) or "")
    hltype(method), hlval(42)  # what sendData builds for its debug line, per frame
    assert styled == []


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()  # the test process's objects back in the collector's generations


def test_the_server_freezes_its_startup_objects_before_it_serves(monkeypatch, unfrozen):
    # A full collection walked every object of Django and the apps again (~90 ms with the
    # loop stopped, every ~500 small runs); frozen, it walks only what came after.
    seen = []
    monkeypatch.setattr(Server, "run", lambda self: seen.append(gc.get_freeze_count()))
    server = CanvasServer.__new__(CanvasServer)  # run() needs nothing from __init__ here

    server.run()

    assert seen
    assert seen[0] > 10_000


# The entry point run as ``python -m`` runs it, stopped by ``--help`` once Daphne's module (and
# with it the loop Daphne serves on) was imported; prints that loop's class.
SERVED_LOOP = """
import runpy, sys
sys.argv = ["canvas.daphne_server", "--help"]
try:
    runpy.run_module("canvas.daphne_server", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
loop = sys.modules["daphne.server"].twisted_loop
print(type(loop).__module__, type(loop).__name__)
"""


def served_loop(daphne_event_loop: str | None) -> str:
    env = {key: value for key, value in os.environ.items() if key != "DAPHNE_EVENT_LOOP"}
    if daphne_event_loop is not None:
        env["DAPHNE_EVENT_LOOP"] = daphne_event_loop
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", SERVED_LOOP],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()[-1]


def test_the_server_serves_on_uvloop_by_default():
    assert served_loop(None) == "uvloop Loop"


def test_daphne_event_loop_asyncio_keeps_the_standard_library_loop():
    assert served_loop("asyncio") == "asyncio.unix_events _UnixSelectorEventLoop"


def test_an_unknown_event_loop_stops_the_server_with_one_line():
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "canvas.daphne_server", "canvas.asgi:application"],
        cwd=BASE_DIR,
        env={**os.environ, "DAPHNE_EVENT_LOOP": "trio"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "canvas.daphne_server: DAPHNE_EVENT_LOOP must be one of uvloop, asyncio, not 'trio'.\n"
    )


@pytest.fixture
def policy_restored():
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


def test_without_uvloop_the_default_is_the_standard_loop(monkeypatch, policy_restored):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # its import fails, as where not installed

    assert use_event_loop(None) == "asyncio"
    assert type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy
    with pytest.raises(ValueError, match="uvloop is not installed"):
        use_event_loop("uvloop")


def test_use_event_loop_sets_the_policy_it_names(policy_restored):
    import uvloop

    assert use_event_loop("uvloop") == "uvloop"
    assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    assert use_event_loop("asyncio") == "asyncio"
    assert type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy


class Wire:
    """A transport that keeps what it is given."""

    def __init__(self):
        self.written = bytearray()

    def write(self, data):
        self.written += data


def open_protocol(protocol_class, **options):
    """A Daphne WebSocket protocol in the open state on a ``Wire``, with Daphne's options."""
    factory = WebSocketFactory(Server.__new__(Server), server="test")
    factory.setProtocolOptions(
        maxMessagePayloadSize=1024 * 1024, maxFramePayloadSize=1024 * 1024, **options
    )
    factory.protocol = protocol_class
    protocol = factory.buildProtocol(("127.0.0.1", 1))
    for name in protocol.CONFIG_ATTRS:  # what connectionMade copies from the factory
        setattr(protocol, name, getattr(factory, name))
    protocol.transport = Wire()
    protocol.state = protocol.STATE_OPEN
    protocol._perMessageCompress = None
    protocol.send_queue = collections.deque()
    protocol.trafficStats = TrafficStats()
    protocol.trackedTimings = None
    protocol.client_addr = ("127.0.0.1", 1)
    return protocol


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 300_000])
def test_a_text_message_goes_out_as_the_same_bytes_as_autobahns_send_message(length):
    text = ("é" * length)[: max(length - length // 3, 0)] + "x" * (length // 3)
    prepared = open_protocol(PreparedWebSocketProtocol)
    plain = open_protocol(WebSocketProtocol)

    written = open_protocol(PreparedWebSocketProtocol)

    prepared.serverSend(text)
    plain.serverSend(text)
    assert written.write_text(text) is True

    assert bytes(prepared.transport.written) == bytes(plain.transport.written)
    assert bytes(written.transport.written) == bytes(plain.transport.written)
    assert len(prepared.transport.written) >= len(text.encode())
    assert written.trafficStats.outgoingOctetsWireLevel == len(plain.transport.written)


def refusing(protocol, case: str):
    if case == "connecting":
        protocol.state = protocol.STATE_CONNECTING
    elif case == "closing":
        protocol.state = protocol.STATE_CLOSING
    elif case == "queued":
        protocol.send_queue.append((b"ahead", True))
    elif case == "logging octets":
        protocol.logOctets = True
    elif case == "compressed":
        protocol._perMessageCompress = object()
    return protocol


@pytest.mark.parametrize(
    "case", ["connecting", "closing", "queued", "logging octets", "compressed", "fragmenting"]
)
def test_write_text_writes_nothing_where_send_message_must_take_the_message(case):
    options = {"autoFragmentSize": 16} if case == "fragmenting" else {}
    protocol = refusing(open_protocol(PreparedWebSocketProtocol, **options), case)

    assert protocol.write_text("text") is False
    assert protocol.transport.written == b""


def test_write_text_leaves_a_message_over_the_limit_to_send_message():
    protocol = open_protocol(PreparedWebSocketProtocol)

    assert protocol.write_text("x" * (1024 * 1024 + 1)) is False
    assert protocol.transport.written == b""


def test_a_message_over_the_limit_is_refused_as_before():
    prepared = open_protocol(PreparedWebSocketProtocol)

    with pytest.raises(PayloadExceededError):
        prepared.serverSend("x" * (1024 * 1024 + 1))
    assert prepared.transport.written == b""


def test_binary_and_fragmented_messages_go_through_send_message(monkeypatch):
    sent = []
    monkeypatch.setattr(
        WebSocketProtocol, "sendMessage", lambda self, payload, binary: sent.append(binary)
    )
    prepared = open_protocol(PreparedWebSocketProtocol)
    prepared.serverSend(b"\x00\x01", True)
    fragmenting = open_protocol(PreparedWebSocketProtocol, autoFragmentSize=16)
    fragmenting.serverSend("text")

    assert sent == [True, False]
    assert prepared.transport.written == fragmenting.transport.written == b""


def test_the_server_builds_its_sockets_with_the_prepared_protocol(monkeypatch):
    monkeypatch.setattr(Server, "listen_success", lambda self, port: None)
    server = CanvasServer.__new__(CanvasServer)
    server.ws_factory = WebSocketFactory(server, server="test")

    server.listen_success(port=None)

    assert server.ws_factory.protocol is PreparedWebSocketProtocol
    assert server.ws_factory.failByDrop is False


def test_the_server_offers_its_sockets_write_text_to_the_application(monkeypatch):
    scopes = []
    monkeypatch.setattr(Server, "create_application", lambda self, p, scope: scopes.append(scope))
    server = CanvasServer.__new__(CanvasServer)
    socket = open_protocol(PreparedWebSocketProtocol)

    server.create_application(socket, {"type": "websocket", "extensions": {"other": {}}})
    server.create_application(object(), {"type": "http"})  # an HTTP request's protocol

    extensions = scopes[0]["extensions"]
    assert extensions[realtime.WRITE_TEXT_EXTENSION]["write"] == socket.write_text
    assert extensions["other"] == {}
    assert "extensions" not in scopes[1]


@pytest.mark.parametrize(("verbosity", "lines"), [(0, 0), (1, 0), (2, 1), (3, 1)])
def test_twisteds_access_log_line_is_made_only_where_daphne_keeps_twisteds_log(
    monkeypatch, verbosity, lines
):
    # Below verbosity 2 Daphne sends Twisted's log nowhere (daphne.server.Server.run).
    made = []
    monkeypatch.setattr(HTTPFactory, "log", lambda self, request: made.append(request))
    server = Server.__new__(Server)
    server.verbosity = verbosity

    RawBodyHTTPFactory(server).log("request")

    assert len(made) == lines
