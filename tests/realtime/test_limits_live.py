"""The socket's frame limits as docs/realtime.md states them, with a real client (websockets)
against a real Daphne started as ``make run`` starts it (``canvas.daphne_server``).

- at most 64 KiB *in bytes* (``REALTIME_MAX_MESSAGE_BYTES``), else ``message_too_large`` with the
  socket open;
- JSON nested too deep is ``invalid_json`` with the socket open (no ``RecursionError``);
- past the transport limit (1 MiB) the socket closes with 1009;
- no client input leaves a traceback in the server's log.
"""

import json

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.live import BASE_DIR, daphne_process, server_env_for_test_db
from tests.realtime.test_protocol_live import recv, token_of, ws_url

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 64 * 1024
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def served_with_log(django_db_setup, tmp_path_factory):
    log = tmp_path_factory.mktemp("limits") / "daphne.log"
    env = server_env_for_test_db(WORKFLOW_EXECUTOR="inline", LOG_LEVEL="INFO")
    with daphne_process(env, log=log) as (base_url, _):
        yield base_url, log


@pytest.fixture
def ws(served_with_log, user):
    base_url, _ = served_with_log
    # max_size: the client's own receive limit, irrelevant here (the server's is tested).
    with connect(ws_url(base_url, f"?token={token_of(user)}"), max_size=None) as sock:
        yield sock


def answer(ws, frame: str | bytes) -> dict:
    ws.send(frame)
    return recv(ws)


def still_open(ws) -> bool:
    return answer(ws, json.dumps({"type": "ping"})) == {"type": "pong"}


def ping_of_size(size: int, char: str = "x") -> str:
    """A ping frame of exactly ``size`` bytes in UTF-8, padded with ``char``."""
    bare = len(json.dumps({"type": "ping", "pad": ""}).encode())
    width = len(char.encode())
    assert (size - bare) % width == 0
    return json.dumps({"type": "ping", "pad": char * ((size - bare) // width)}, ensure_ascii=False)


def test_a_frame_of_exactly_the_limit_in_bytes_is_handled(ws):
    frame = ping_of_size(LIMIT)
    assert len(frame.encode()) == LIMIT
    assert answer(ws, frame) == {"type": "pong"}


@pytest.mark.parametrize(
    "frame",
    [
        ping_of_size(LIMIT + 1),
        # 22,000 characters, 66,000 bytes: under the limit counted in characters, over in bytes.
        ping_of_size(len(json.dumps({"type": "ping", "pad": ""})) + 3 * 22_000, "€"),
        "x" * (512 * 1024),
        ping_of_size(LIMIT + 1).encode(),  # a binary frame is counted the same way
    ],
    ids=["one byte over", "multibyte over", "half a MiB", "binary"],
)
def test_a_frame_over_the_limit_in_bytes_is_refused_and_the_socket_stays_open(ws, frame):
    reply = answer(ws, frame)
    assert (reply["type"], reply["code"]) == ("error", "message_too_large")
    assert still_open(ws)


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 30_000,  # 30 KB: Python's decoder raised RecursionError, the socket died (1011)
        "[" * 30_000 + "]" * 30_000,
        '{"type": "ping", "request_id": ' + "[" * 40 + "]" * 40 + "}",
        '{"type": "ping", "x": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}",
    ],
    ids=["unclosed", "closed", "deep request_id", "deep object"],
)
def test_json_nested_too_deep_is_invalid_json_and_the_socket_stays_open(ws, frame):
    reply = answer(ws, frame)
    assert (reply["type"], reply["code"]) == ("error", "invalid_json")
    assert still_open(ws)


def test_json_nested_within_the_bound_is_handled(ws):
    frame = '{"type": "ping", "x": ' + "[" * 30 + "]" * 30 + "}"
    assert answer(ws, frame) == {"type": "pong"}


def test_a_frame_over_the_transport_limit_closes_with_1009(ws):
    ws.send("x" * (MIB + 1))
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None, "the server dropped the connection without a close"
    assert closed.value.rcvd.code == 1009


def test_no_client_input_leaves_a_traceback_in_the_log(served_with_log, user):
    base_url, log = served_with_log
    nasty = [
        "[" * 100_000,
        "\x00",
        b"\xff\xfe\x00",
        "null",
        '{"type": null}',
        '{"type": "subscribe", "topic": {"a": 1}, "after": "x"}',
        '{"type": "subscribe", "topic": "execution:' + "9" * 5000 + '"}',
        '{"type": "execution.cancel", "execution": [1]}',
        '{"type": "chat.send", "conversation": {}, "content": 5}',
        '{"type": "chat.cancel", "conversation": "x"}',
        '{"type": "unsubscribe", "topic": null, "request_id": {"a": [1]}}',
        '{"type": "ping", "request_id": "' + "r" * 60_000 + '"}',
        json.dumps({"type": "ping", "x": 1e308 * 10}),
        '{"type": "ping", "x": NaN}',
    ]
    with connect(ws_url(base_url, f"?token={token_of(user)}"), max_size=None) as ws:
        for frame in nasty:
            ws.send(frame)
            recv(ws)
        assert still_open(ws)
    with connect(ws_url(base_url, f"?token={token_of(user)}")) as ws:
        ws.send("x" * (MIB + 1))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)

    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    assert "RecursionError" not in text


def test_make_run_serves_through_the_same_launcher():
    makefile = (BASE_DIR / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "-m canvas.daphne_server" in recipe
