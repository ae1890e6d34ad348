"""canvas/daphne_server.py: autobahn's per-frame debug-log arguments are built lazily."""

import autobahn.twisted.websocket
import autobahn.util
import autobahn.websocket.protocol
import click
from autobahn.websocket.protocol import WebSocketProtocol

from canvas.daphne_server import lazy_highlights


def test_autobahn_highlights_render_as_before_but_only_when_formatted(monkeypatch):
    for module in (autobahn.websocket.protocol, autobahn.twisted.websocket):
        monkeypatch.setattr(module, "hltype", module.hltype)  # restored after the test
        monkeypatch.setattr(module, "hlval", module.hlval)
    lazy_highlights()
    lazy_highlights()  # idempotent

    hltype, hlval = autobahn.websocket.protocol.hltype, autobahn.twisted.websocket.hlval
    method = WebSocketProtocol.sendData
    assert f"{hltype(method)}" == autobahn.util.hltype(method)
    assert f"{hlval(42)}" == autobahn.util.hlval(42)
    assert str(hlval("peer", color="green", bold=False)) == autobahn.util.hlval(
        "peer", color="green", bold=False
    )

    styled = []
    monkeypatch.setattr(click, "style", lambda *a, **k: styled.append(a) or "")
    hltype(method), hlval(42)  # what sendData builds for its debug line, per frame
    assert styled == []
