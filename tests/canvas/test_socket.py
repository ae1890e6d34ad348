"""The /ws/ consumer: auth and origin rules, limits, bad input, and the gapless relay.

The relay is exercised through a test-only sequenced topic whose "persisted log" is a list, so
the consumer's replay / duplicate / backfill logic is tested apart from any app's models.
"""

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings
from rest_framework.authtoken.models import Token

from canvas.asgi import application
from canvas.core import realtime
from canvas.core.exceptions import NotFoundError

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


class LogTopic(realtime.Topic):
    """A sequenced topic over an in-memory log: {object_id: [event, ...]}."""

    kind = "testlog"
    sequenced = True
    final_events = frozenset({"done"})
    logs: dict = {}
    owners: dict = {}

    def open(self, *, user, object_id, after):
        if self.owners.get(object_id) != user.pk:
            raise NotFoundError(f"testlog:{object_id} was not found.")
        log = self.logs[object_id]
        replay = [e for e in log if after is not None and e["seq"] > after]
        last = log[-1]["seq"] if log else 0
        return realtime.Opened(
            snapshot={"last_seq": last},
            events=replay,
            last_seq=max(last, after or 0),
            final=bool(log) and log[-1]["event"] == "done",
        )

    def events_after(self, *, object_id, after, limit=1000):
        return [e for e in self.logs[object_id] if e["seq"] > after][:limit]

    def last_seqs(self, object_ids):
        return {i: self.logs[i][-1]["seq"] for i in object_ids if self.logs.get(i)}


realtime.register_topic(LogTopic)


def log_event(object_id, seq, event="tick"):
    return realtime.event_message(
        topic=f"testlog:{object_id}",
        event=event,
        data={"n": seq},
        ts="2026-01-01T00:00:00Z",
        seq=seq,
    )


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="pw-alice-123")


@pytest.fixture
def token(alice):
    return Token.objects.create(user=alice).key


async def connect(path="/ws/", headers=()):
    communicator = WebsocketCommunicator(application, path, headers=list(headers))
    connected, _ = await communicator.connect()
    assert connected  # the protocol always accepts, then closes with a code
    return communicator


async def closed_with(communicator):
    output = await communicator.receive_output(timeout=2)
    assert output["type"] == "websocket.close"
    return output["code"]


@pytest.fixture
async def sock(token):
    communicator = await connect(f"/ws/?token={token}")
    yield communicator
    await communicator.disconnect()


# --- auth and origin -------------------------------------------------------------------------


async def test_no_credentials_closes_with_4401():
    communicator = await connect(headers=[ORIGIN])
    assert await closed_with(communicator) == 4401


async def test_bad_token_closes_with_4401():
    communicator = await connect("/ws/?token=nope")
    assert await closed_with(communicator) == 4401


async def test_an_inactive_users_token_closes_with_4401(alice, token):
    alice.is_active = False
    await database_sync_to_async(alice.save)()
    communicator = await connect(f"/ws/?token={token}")
    assert await closed_with(communicator) == 4401


async def test_foreign_origin_closes_with_4403(token):
    communicator = await connect(
        f"/ws/?token={token}", headers=[(b"origin", b"http://evil.example")]
    )
    assert await closed_with(communicator) == 4403


async def test_token_without_origin_is_a_non_browser_client_and_allowed(sock):
    await sock.send_json_to({"type": "ping"})
    assert await sock.receive_json_from(timeout=2) == {"type": "pong"}


async def test_session_cookie_with_allowed_origin_authenticates(alice, client):
    await database_sync_to_async(client.force_login)(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = await connect(headers=[ORIGIN, (b"cookie", cookie)])
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=2) == {"type": "pong"}
    await communicator.disconnect()


async def test_session_cookie_without_origin_is_refused(alice, client):
    await database_sync_to_async(client.force_login)(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = await connect(headers=[(b"cookie", cookie)])
    assert await closed_with(communicator) == 4401


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"no": "type"}', "invalid_message"),
        ('{"type": "nope", "request_id": "r1"}', "unknown_type"),
        ('{"type": "subscribe"}', "invalid_topic"),
        ('{"type": "subscribe", "topic": "planet:1"}', "invalid_topic"),
        ('{"type": "subscribe", "topic": "testlog:not-a-uuid"}', "not_found"),
        (
            '{"type": "unsubscribe", "topic": "testlog:7f0c2f7e-0000-4000-8000-000000000000"}',
            "not_subscribed",
        ),
    ],
)
async def test_bad_input_answers_an_error_and_keeps_the_socket_open(sock, frame, code):
    await sock.send_to(text_data=frame)
    reply = await sock.receive_json_from(timeout=2)
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert "Traceback" not in reply["message"]

    await sock.send_json_to({"type": "ping"})
    assert await sock.receive_json_from(timeout=2) == {"type": "pong"}


async def test_error_echoes_the_request_id(sock):
    await sock.send_json_to({"type": "nope", "request_id": "abc"})
    reply = await sock.receive_json_from(timeout=2)
    assert reply["request_id"] == "abc"


@override_settings(REALTIME_MAX_MESSAGE_BYTES=100)
async def test_oversized_message_is_refused(sock):
    await sock.send_json_to({"type": "ping", "pad": "x" * 200})
    reply = await sock.receive_json_from(timeout=2)
    assert reply["code"] == "message_too_large"


@override_settings(
    REALTIME_RATE_LIMIT_PER_SECOND=0.001, REALTIME_RATE_LIMIT_BURST=3, REALTIME_ABUSE_LIMIT=2
)
async def test_rate_limit_then_close_with_4429_on_abuse(token):
    communicator = await connect(f"/ws/?token={token}")
    for _ in range(3):
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=2) == {"type": "pong"}
    for _ in range(2):
        await communicator.send_json_to({"type": "ping"})
        assert (await communicator.receive_json_from(timeout=2))["code"] == "rate_limited"
    await communicator.send_json_to({"type": "ping"})
    assert await closed_with(communicator) == 4429


@override_settings(REALTIME_MAX_SUBSCRIPTIONS=2)
async def test_subscription_cap(sock, alice):
    ids = [uuid.uuid4() for _ in range(3)]
    for object_id in ids:
        LogTopic.logs[object_id] = []
        LogTopic.owners[object_id] = alice.pk
    for object_id in ids[:2]:
        await sock.send_json_to({"type": "subscribe", "topic": f"testlog:{object_id}"})
        assert (await sock.receive_json_from(timeout=2))["type"] == "subscribed"
    await sock.send_json_to({"type": "subscribe", "topic": f"testlog:{ids[2]}"})
    assert (await sock.receive_json_from(timeout=2))["code"] == "too_many_subscriptions"


@override_settings(REALTIME_HEARTBEAT_SECONDS=0.05)
async def test_heartbeat(token):
    communicator = await connect(f"/ws/?token={token}")
    assert await communicator.receive_json_from(timeout=2) == {"type": "heartbeat"}
    await communicator.disconnect()


# --- the gapless relay -----------------------------------------------------------------------


@pytest.fixture
def log(alice):
    object_id = uuid.uuid4()
    LogTopic.logs[object_id] = [log_event(object_id, n) for n in range(1, 4)]
    LogTopic.owners[object_id] = alice.pk
    return object_id


async def seqs_until_quiet(communicator, timeout=0.3):
    # receive_nothing waits without cancelling the app (a receive timeout would).
    seqs = []
    while not await communicator.receive_nothing(timeout=timeout):
        frame = await communicator.receive_json_from(timeout=timeout)
        assert frame["type"] == "event"
        seqs.append(frame["seq"])
    return seqs


async def test_other_users_object_answers_not_found(sock, log, django_user_model):
    LogTopic.owners[log] = -1
    await sock.send_json_to({"type": "subscribe", "topic": f"testlog:{log}"})
    reply = await sock.receive_json_from(timeout=2)
    assert reply["code"] == "not_found"


async def test_subscribe_with_after_replays_then_relays_live_without_duplicates(sock, log):
    await sock.send_json_to({"type": "subscribe", "topic": f"testlog:{log}", "after": 1})
    subscribed = await sock.receive_json_from(timeout=2)
    assert subscribed == {
        "type": "subscribed",
        "topic": f"testlog:{log}",
        "snapshot": {"last_seq": 3},
    }
    assert await seqs_until_quiet(sock) == [2, 3]

    layer = get_channel_layer(settings.EVENTS_CHANNEL_LAYER)
    group = LogTopic.group_name(log)
    # A duplicate of a replayed event (published between replay and join) is dropped.
    await layer.group_send(group, log_event(log, 3))
    LogTopic.logs[log].append(log_event(log, 4))
    await layer.group_send(group, log_event(log, 4))
    assert await seqs_until_quiet(sock) == [4]


async def test_a_batch_of_events_is_relayed_in_order_with_the_same_rules(sock, log):
    """One group message with several events (a flush's batch) is relayed event by event:
    duplicates dropped, jumps backfilled, the order kept."""
    await sock.send_json_to({"type": "subscribe", "topic": f"testlog:{log}", "after": 1})
    await sock.receive_json_from(timeout=2)
    assert await seqs_until_quiet(sock) == [2, 3]

    # 3 is a duplicate; 5's live copy was lost, so 6 makes the consumer backfill 5.
    LogTopic.logs[log] += [log_event(log, n) for n in (4, 5, 6)]
    batch = [log_event(log, n) for n in (3, 4, 6)]
    await get_channel_layer(settings.EVENTS_CHANNEL_LAYER).group_send(
        LogTopic.group_name(log), realtime.events_message(topic=f"testlog:{log}", events=batch)
    )
    assert await seqs_until_quiet(sock) == [4, 5, 6]


async def frame_texts_until_quiet(communicator, timeout=0.3):
    texts = []
    while not await communicator.receive_nothing(timeout=timeout):
        output = await communicator.receive_output(timeout=timeout)
        texts.append(output["text"])
    return texts


async def test_a_live_events_frame_encoded_once_is_the_text_a_replay_sends(token, log):
    """The publisher encodes a live event's frame once for every socket: the same bytes, key
    order and separators as the frame the consumer encodes itself for a replayed event."""
    topic = f"testlog:{log}"
    event = realtime.event_message(
        topic=topic,
        event="tick",
        data={"text": 'héllo \u2028 "wörld"', "nested": {"b": [1, 2.5, None, True]}, "a": 1},
        ts="2026-01-01T00:00:00.123456Z",
        seq=4,
    )
    live, replayed = await connect(f"/ws/?token={token}"), await connect(f"/ws/?token={token}")
    await live.send_json_to({"type": "subscribe", "topic": topic, "after": 3})
    await live.receive_json_from(timeout=2)

    LogTopic.logs[log].append(event)
    await get_channel_layer(settings.EVENTS_CHANNEL_LAYER).group_send(
        LogTopic.group_name(log), realtime.with_encoded_frame(event)
    )
    [live_text] = await frame_texts_until_quiet(live)
    await replayed.send_json_to({"type": "subscribe", "topic": topic, "after": 3})
    await replayed.receive_json_from(timeout=2)
    [replayed_text] = await frame_texts_until_quiet(replayed)

    assert live_text == replayed_text
    # The protocol's key order, and send_json's encoding (json.dumps' defaults).
    frame = {"type": "event", "topic": topic, "seq": 4, "event": "tick"}
    frame.update(data=event["data"], ts=event["ts"])
    assert live_text == json.dumps(frame)
    unsequenced = {key: value for key, value in event.items() if key != "seq"}
    del frame["seq"]
    assert realtime.with_encoded_frame(unsequenced)["encoded"] == json.dumps(frame)
    await live.disconnect()
    await replayed.disconnect()


async def test_live_events_go_out_as_their_encoded_text_and_a_backfill_is_encoded_here(sock, log):
    """The consumer sends the text the publisher encoded (a marker here shows which path
    sent a frame); an event it reads from the log (a backfill of a gap) it encodes itself."""
    topic = f"testlog:{log}"
    await sock.send_json_to({"type": "subscribe", "topic": topic, "after": 3})
    await sock.receive_json_from(timeout=2)

    def marked(message):
        encoded = json.loads(realtime.with_encoded_frame(message)["encoded"])
        return {**message, "encoded": json.dumps({**encoded, "via": "publisher"})}

    LogTopic.logs[log] += [log_event(log, n) for n in (4, 5, 6)]
    batch = [marked(log_event(log, 4)), marked(log_event(log, 6))]  # 5's live copy was lost
    await get_channel_layer(settings.EVENTS_CHANNEL_LAYER).group_send(
        LogTopic.group_name(log), realtime.events_message(topic=topic, events=batch)
    )
    frames = [json.loads(text) for text in await frame_texts_until_quiet(sock)]
    assert [(f["seq"], f.get("via")) for f in frames] == [
        (4, "publisher"),
        (5, None),
        (6, "publisher"),
    ]


async def test_group_messages_are_left_as_they_were_sent(token, log):
    """Consumers only read a group message: the in-memory layer hands every socket (and here
    a plain channel of the same group) the same copy."""
    topic = f"testlog:{log}"
    sockets = [await connect(f"/ws/?token={token}") for _ in range(2)]
    for communicator in sockets:
        await communicator.send_json_to({"type": "subscribe", "topic": topic, "after": 3})
        await communicator.receive_json_from(timeout=2)
    layer = get_channel_layer(settings.EVENTS_CHANNEL_LAYER)
    watcher = await layer.new_channel()
    await layer.group_add(LogTopic.group_name(log), watcher)

    events = [log_event(log, 4), log_event(log, 5, "done")]
    LogTopic.logs[log] += events
    batch = realtime.events_message(
        topic=topic, events=[realtime.with_encoded_frame(event) for event in events]
    )
    await layer.group_send(LogTopic.group_name(log), batch)
    for communicator in sockets:
        assert await seqs_until_quiet(communicator) == [4, 5]
        await communicator.disconnect()

    assert await asyncio.wait_for(layer.receive(watcher), 2) == batch
    await layer.group_discard(LogTopic.group_name(log), watcher)


async def test_messages_skip_channels_connection_closing_hop(sock, log, monkeypatch):
    """Channels' dispatch closes old database connections in a thread hop per message; the
    consumer handles client messages and relays group messages without it (the reads they
    make close old connections themselves)."""
    hops = []

    async def counted_hop():
        hops.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counted_hop)
    topic = f"testlog:{log}"
    await sock.send_json_to({"type": "subscribe", "topic": topic, "after": 3})
    await sock.receive_json_from(timeout=2)
    await sock.send_json_to({"type": "ping"})
    assert await sock.receive_json_from(timeout=2) == {"type": "pong"}
    assert hops == []

    LogTopic.logs[log].append(log_event(log, 4))
    layer = get_channel_layer(settings.EVENTS_CHANNEL_LAYER)
    await layer.group_send(LogTopic.group_name(log), realtime.with_encoded_frame(log_event(log, 4)))
    assert await seqs_until_quiet(sock) == [4]
    assert hops == []


async def test_a_jump_is_backfilled_from_the_log(sock, log):
    await sock.send_json_to({"type": "subscribe", "topic": f"testlog:{log}", "after": 3})
    await sock.receive_json_from(timeout=2)

    # Events 4 and 5 were persisted but their live messages were lost (a full channel).
    LogTopic.logs[log] += [log_event(log, 4), log_event(log, 5), log_event(log, 6, "done")]
    await get_channel_layer(settings.EVENTS_CHANNEL_LAYER).group_send(
        LogTopic.group_name(log), log_event(log, 6, "done")
    )

    assert await seqs_until_quiet(sock) == [4, 5, 6]


@override_settings(REALTIME_HEARTBEAT_SECONDS=60, REALTIME_TAIL_CHECK_SECONDS=0.1)
async def test_a_lost_tail_is_found_by_the_tail_check(token, log):
    communicator = await connect(f"/ws/?token={token}")
    await communicator.send_json_to({"type": "subscribe", "topic": f"testlog:{log}", "after": 3})
    await communicator.receive_json_from(timeout=2)

    # The last event was persisted, its live message lost: nothing later reveals the gap.
    LogTopic.logs[log].append(log_event(log, 4, "done"))

    frame = await communicator.receive_json_from(timeout=2)
    assert (frame["type"], frame["seq"]) == ("event", 4)
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_unsubscribe_stops_the_relay(sock, log):
    topic = f"testlog:{log}"
    await sock.send_json_to({"type": "subscribe", "topic": topic, "after": 3})
    await sock.receive_json_from(timeout=2)
    await sock.send_json_to({"type": "unsubscribe", "topic": topic})
    assert await sock.receive_json_from(timeout=2) == {"type": "unsubscribed", "topic": topic}

    LogTopic.logs[log].append(log_event(log, 4))
    await get_channel_layer(settings.EVENTS_CHANNEL_LAYER).group_send(
        LogTopic.group_name(log), log_event(log, 4)
    )
    assert await sock.receive_nothing(timeout=0.3)


async def test_publisher_from_a_thread_reaches_the_socket_in_order(sock, log):
    from canvas.core.publisher import publisher

    await sock.send_json_to({"type": "subscribe", "topic": f"testlog:{log}", "after": 3})
    await sock.receive_json_from(timeout=2)

    def publish_many():
        for n in range(4, 54):
            LogTopic.logs[log].append(log_event(log, n))
            publisher.publish(LogTopic.group_name(log), log_event(log, n))
        assert publisher.flush(timeout=5)

    await asyncio.get_running_loop().run_in_executor(None, publish_many)
    assert await seqs_until_quiet(sock) == list(range(4, 54))
