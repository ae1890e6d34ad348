"""Daphne as this project serves it: ``python -m canvas.daphne_server [daphne options] APP``.

Daphne's command line, options and all, with one change. Daphne (since 4.2.2) passes autobahn a
WebSocket message and frame limit, 1 MiB by default (``--websocket-max-message-size``,
``--websocket-max-frame-size``), but autobahn fails an over-limit connection with its default
``failByDrop``: it drops the TCP connection, and the client sees no close code. Here autobahn
runs the closing handshake instead, so the client gets **1009** (message too big), as
docs/realtime.md promises.

``make run`` and the test suite's live servers start this; production runs it in place of the
``daphne`` command. (The module name starts with ``daphne`` on purpose: the recovery loop
starts in server processes, recognised by their program name, see ``workflows/recovery.py``.)
"""

from daphne.cli import CommandLineInterface
from daphne.server import Server


class CanvasServer(Server):
    def listen_success(self, port):
        # run() has built the WebSocket factory and set Daphne's options on it; the reactor
        # accepts no connection before its ports listen, so every connection gets this.
        self.ws_factory.setProtocolOptions(failByDrop=False)
        super().listen_success(port)


class CanvasCommandLine(CommandLineInterface):
    server_class = CanvasServer


if __name__ == "__main__":
    CanvasCommandLine.entrypoint()
