"""Daphne as this project serves it: ``python -m canvas.daphne_server [daphne options] APP``.

Daphne's command line, options and all, with two changes. Daphne (since 4.2.2) passes autobahn a
WebSocket message and frame limit, 1 MiB by default (``--websocket-max-message-size``,
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

And the objects that exist when the server starts (Django, the apps, the URLconf: ~150,000 of
them) live as long as the process, yet each of the collector's full collections walked them
all again: ~90 ms with the serving loop stopped, about once every 500 small runs (measured
with ``gc.callbacks`` while 8 clients looped 3-node runs). The server freezes them
(``gc.freeze``) before it serves: a full collection then walks only what came after, ~20 ms.

``make run`` and the test suite's live servers start this; production runs it in place of the
``daphne`` command. (The module name starts with ``daphne`` on purpose: the recovery loop
starts in server processes, recognised by their program name, see ``workflows/recovery.py``.)
"""

import gc

import autobahn.twisted.websocket
import autobahn.util
import autobahn.websocket.protocol
import daphne.server
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server


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


class CanvasServer(Server):
    def run(self):
        # The application (canvas.asgi, Django set up) was imported before the server was made.
        freeze_startup_objects()
        super().run()

    def listen_success(self, port):
        # run() has built the WebSocket factory and set Daphne's options on it; the reactor
        # accepts no connection before its ports listen, so every connection gets this.
        self.ws_factory.setProtocolOptions(failByDrop=False)
        super().listen_success(port)


class CanvasCommandLine(CommandLineInterface):
    server_class = CanvasServer


if __name__ == "__main__":
    lazy_highlights()
    raw_request_bodies()
    CanvasCommandLine.entrypoint()
