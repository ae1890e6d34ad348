"""canvas/daphne_server.py: autobahn's per-frame debug-log arguments are built lazily; the
objects made at startup are frozen before the server serves."""

import gc

import autobahn.twisted.websocket
import autobahn.util
import autobahn.websocket.protocol
import click
import pytest
from autobahn.websocket.protocol import WebSocketProtocol
from daphne.server import Server

from canvas.daphne_server import CanvasServer, lazy_highlights


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
