"""Daphne as this project serves it: ``python -m canvas.daphne_server [daphne options] APP``.

Daphne's command line, options and all, with the changes below. Daphne (since 4.2.2) passes
autobahn a WebSocket message and frame limit, 1 MiB by default (``--websocket-max-message-size``,
``--websocket-max-frame-size``), but autobahn fails an over-limit connection with its default
``failByDrop``: it drops the TCP connection, and the client sees no close code. Here autobahn
runs the closing handshake instead, so the client gets **1009** (message too big), as
docs/realtime.md promises.

And autobahn builds the arguments of a debug log line on every frame it sends, debug logging
on or not: ``sendData`` calls ``hltype`` and ``hlval`` three times, four ``click.style``
calls and a qualified-name lookup (5.6 us a frame, ~10 % of the serving loop's samples while
it relayed 10,000 token frames, bench/relay_cpu.py). Here the two names, as autobahn's
WebSocket modules imported them, build their text only when a log line is rendered
(``lazy_highlights``): what a debug log shows is unchanged.

And Twisted parses the body of every form POST (``application/x-www-form-urlencoded`` and
``multipart/form-data``) into ``request.args`` before Daphne sees it, with the ``email``
package, on the serving loop. Daphne never reads ``args`` (the application gets the body's
bytes and Django parses them), so that was work for nothing: an ``EmailMessage`` per POST
with a body (``_parseContentType``, ~2 % of the loop thread's cProfile in a loop of API
POSTs), a multipart body parsed whole in the loop's thread, and a multipart body the
``email`` package found malformed answered with Twisted's bare 400 (no body), not the API's
JSON error. Here requests are built with Twisted's own switch for it,
``parsePOSTFormSubmission=False`` (``raw_request_bodies``).

And Twisted formats its own access log line for every request (``HTTPFactory.log``) and
publishes it to Twisted's log, which Daphne sends nowhere below verbosity 2 (it writes its own
access log): 1.3 % of the serving process's samples under 8 clients. Below verbosity 2 that
line is no longer made; from 2 on it is, as before.

And the objects that exist when the server starts (Django, the apps, the URLconf: ~150,000 of
them) live as long as the process, yet each of the collector's full collections walked them
all again: ~90 ms with the serving loop stopped, about once every 500 small runs (measured
with ``gc.callbacks`` while 8 clients looped 3-node runs). The server freezes them
(``gc.freeze``) before it serves: a full collection then walks only what came after, ~20 ms.

And a text message is written by ``PreparedWebSocketProtocol.write_text``: its frame built
in one step (autobahn's ``PreparedMessage``) and handed to the transport, instead of through
``sendMessage``'s per-message asserts, statistics, ``sendFrame`` and ``sendData``'s debug
arguments. The bytes on the wire are the same (tested against ``sendMessage``). A binary,
fragmented, compressed or over-limit message, one sent before the handshake completed or after
the close began, one behind frames autobahn queued, and any with octet logging on, still goes
through ``sendMessage``. ``CanvasServer`` offers that write to the application in a WebSocket
connection's scope (``scope["extensions"]``, under ``canvas.core.realtime.WRITE_TEXT_EXTENSION``),
and the consumer sends its text frames with that one call rather than through ASGI's ``send``
(Channels' and Daphne's coroutines, Daphne's checks of a message of any type); what it refuses
goes through ASGI. In the 500-socket live fan-out the serving process's CPU per frame fell
from 18-19 to 16-17 us with the prepared frames, then from 17-20 to 14-18 us with the offered
write (p99 0.62-0.69 to 0.50-0.60 s, docs/benchmarks.md).

And the event loop under Twisted's reactor is uvloop's (MagicStack's libuv loop, the one
uvicorn uses) rather than the standard library's. Daphne runs Twisted's asyncio reactor on a
loop it makes when ``daphne.server`` is imported, from the event loop policy of that moment,
so the policy is set here before that import (``use_event_loop``). Every request and frame
goes through that loop's callbacks, readers and writers (the standard loop's own code was ~20 %
of the serving loop's samples under 8 clients, py-spy): the CPU per 3-node run fell 6-17 %,
and 100 streams' token latency halved at p50 (docs/benchmarks.md). ``DAPHNE_EVENT_LOOP=asyncio``
keeps the standard library's loop; the variable is read from the process's environment
(before the settings and ``.env``).

``make run`` and the test suite's live servers start this; production runs it in place of the
``daphne`` command. (The module name starts with ``daphne`` on purpose: the recovery loop
starts in server processes, recognised by their program name, see ``workflows/recovery.py``.)
"""

import asyncio
import gc
import os
import sys

EVENT_LOOPS = ("uvloop", "asyncio")


def use_event_loop(name: str | None) -> str:
    """Set the event loop policy the loop Daphne makes on import will come from: uvloop's for
    ``"uvloop"`` or ``None`` (None: the standard library's when uvloop is not installed),
    the standard library's for ``"asyncio"``. Returns the loop chosen; ValueError for a name
    it does not know, or ``"uvloop"`` when uvloop is not installed."""
    if name not in (None, *EVENT_LOOPS):
        choices = ", ".join(EVENT_LOOPS)
        raise ValueError(f"DAPHNE_EVENT_LOOP must be one of {choices}, not {name!r}.")
    if name == "asyncio":
        asyncio.set_event_loop_policy(None)
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise ValueError("DAPHNE_EVENT_LOOP=uvloop, but uvloop is not installed.") from None
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


if __name__ == "__main__":
    # Before the imports below: daphne.server makes its event loop when it is imported.
    try:
        use_event_loop(os.environ.get("DAPHNE_EVENT_LOOP") or None)
    except ValueError as exc:
        sys.exit(f"canvas.daphne_server: {exc}")

import autobahn.twisted.websocket  # noqa: E402
import autobahn.util  # noqa: E402
import autobahn.websocket.protocol  # noqa: E402
import daphne.server  # noqa: E402
from autobahn.websocket.protocol import PreparedMessage  # noqa: E402
from daphne.cli import CommandLineInterface  # noqa: E402
from daphne.http_protocol import HTTPFactory, WebRequest  # noqa: E402
from daphne.server import Server  # noqa: E402
from daphne.ws_protocol import WebSocketProtocol  # noqa: E402
from daphne.ws_protocol import logger as ws_logger  # noqa: E402


class _Highlighted:
    """``autobahn.util``'s ``hltype(value)`` or ``hlval(value, ...)``, made when formatted."""

    __slots__ = ("highlight", "value", "options")

    def __init__(self, highlight, value, options):
        self.highlight, self.value, self.options = highlight, value, options

    def __str__(self):
        return self.highlight(self.value, **self.options)

    def __format__(self, spec):
        return format(str(self), spec)

    __repr__ = __str__


def _lazy_hltype(obj):
    return _Highlighted(autobahn.util.hltype, obj, {})


def _lazy_hlval(val, color="white", bold=True):
    return _Highlighted(autobahn.util.hlval, val, {"color": color, "bold": bold})


def lazy_highlights() -> None:
    """Rebind ``hltype`` and ``hlval`` in autobahn's WebSocket modules (each imported them by
    name) to the lazy forms. Idempotent; the server calls it before it serves."""
    for module in (autobahn.websocket.protocol, autobahn.twisted.websocket):
        module.hltype, module.hlval = _lazy_hltype, _lazy_hlval


class RawBodyRequest(WebRequest):
    """Daphne's request, its body left to the application (Twisted's form parsing off)."""

    def __init__(self, *args, **kwargs):
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)


class RawBodyHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = RawBodyRequest
        return protocol

    def log(self, request):
        # Twisted's own access log line (Combined Log Format), which goes to Twisted's log.
        # Below verbosity 2 Daphne sends that log nowhere (``Server.run``) and writes its own
        # access log instead, so the line was formatted and published for nothing.
        if self.server.verbosity > 1:
            super().log(request)


def raw_request_bodies() -> None:
    """Rebind the HTTP factory ``daphne.server`` builds its server with (``Server.run``
    makes it by that name) to ``RawBodyHTTPFactory``. Idempotent; called before serving."""
    daphne.server.HTTPFactory = RawBodyHTTPFactory


def freeze_startup_objects() -> None:
    """Load the URLconf (and with it the views), collect, and move every object left to the
    collector's permanent generation (``gc.freeze``), which no collection walks."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imported now rather than at the first request
    gc.collect()
    gc.freeze()


class PreparedWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol, writing a text message's frame built in one step
    (autobahn's ``PreparedMessage``) instead of through ``sendMessage``; the application may
    call that write itself (``write_text``, offered in the scope by ``CanvasServer``)."""

    def write_text(self, content: str) -> bool:
        """Write ``content`` as one text frame now and return True; or write nothing and
        return False where ``sendMessage`` must take it: before the handshake completed or
        once the close began, on a compressed or fragmenting connection, behind frames
        autobahn queued, with octet logging on, or over the message limit (refused there)."""
        if (
            self.state != self.STATE_OPEN
            or self._perMessageCompress is not None
            or self.autoFragmentSize
            or self.send_queue
            or self.logOctets
        ):
            return False
        payload = content.encode("utf8")
        if 0 < self.maxMessagePayloadSize < len(payload):
            return False
        ws_logger.debug("Sent WebSocket packet to client for %s", self.client_addr)
        frame = PreparedMessage(payload, isBinary=False, applyMask=False, doNotCompress=False)
        # What autobahn's sendData does with a frame when nothing is queued ahead of it on an
        # open connection, without building its debug line's arguments (1.4 us a frame).
        data = frame.payloadHybi
        self.transport.write(data)
        self.trafficStats.outgoingOctetsWireLevel += len(data)
        return True

    def serverSend(self, content, binary=False):
        if binary or not self.write_text(content):
            super().serverSend(content, binary)


class CanvasServer(Server):
    def create_application(self, protocol, scope):
        if isinstance(protocol, PreparedWebSocketProtocol):
            # Imported here: this module is imported before Django is set up.
            from canvas.core.realtime import WRITE_TEXT_EXTENSION

            extensions = dict(scope.get("extensions") or {})
            extensions[WRITE_TEXT_EXTENSION] = {"write": protocol.write_text}
            scope["extensions"] = extensions
        return super().create_application(protocol, scope)

    def run(self):
        # The application (canvas.asgi, Django set up) was imported before the server was made.
        freeze_startup_objects()
        super().run()

    def listen_success(self, port):
        # run() has built the WebSocket factory and set Daphne's options on it; the reactor
        # accepts no connection before its ports listen, so every connection gets this.
        self.ws_factory.setProtocolOptions(failByDrop=False)
        self.ws_factory.protocol = PreparedWebSocketProtocol
        super().listen_success(port)


class CanvasCommandLine(CommandLineInterface):
    server_class = CanvasServer


if __name__ == "__main__":
    lazy_highlights()
    raw_request_bodies()
    CanvasCommandLine.entrypoint()
