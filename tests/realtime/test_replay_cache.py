"""Finished runs' replays, read and encoded once per process (canvas/core/replays.py)."""

import json
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.utils import timezone

from canvas.core.exceptions import NotFoundError
from canvas.core.realtime import event_frame
from canvas.core.replays import ReplayCache
from tests.fakes.base import Behaviour
from tests.realtime.test_execution_topic import llm_graph, ollama, socket_for  # noqa: F401
from tests.workflows.conftest import build_graph, run_graph, wait_for
from workflows.events import STORED_FIELDS
from workflows.models import Execution, ExecutionEvent
from workflows.realtime import ExecutionTopic, replay_cache
from workflows.selectors import (
    execution_events_after,
    execution_snapshot_and_events_for_user,
    execution_snapshot_for_user,
)
from workflows.services import execution_create

FINAL = {"execution.completed", "execution.failed", "execution.cancelled"}


def messages(size: int, count: int = 1) -> list[dict]:
    return [{"seq": i + 1, "event": "e", "encoded": "x" * size} for i in range(count)]


# --- the bound ------------------------------------------------------------------------------


def test_the_cache_keeps_at_most_its_bound_least_recently_used_out_first():
    cache = ReplayCache(limit=100)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put(a, messages(20, 2))
    cache.put(b, messages(40))
    assert cache.get(a) is not None  # a is now the most recently used
    cache.put(c, messages(30))  # 40 + 40 + 30 > 100: b goes

    assert cache.get(b) is None
    assert cache.get(a).last_seq == 2
    assert cache.get(c) is not None
    assert cache.size == 70 <= cache.limit


def test_a_log_over_the_bound_is_answered_but_not_kept():
    cache = ReplayCache(limit=100)
    kept = uuid.uuid4()
    cache.put(kept, messages(60))
    big = uuid.uuid4()

    entry = cache.put(big, messages(101), snapshot={"status": "succeeded"})

    assert entry.after(0) == messages(101)
    assert entry.final
    assert cache.get(big) is None
    assert cache.get(kept) is not None  # nothing was evicted for it
    assert cache.size == 60
    assert cache.oversized(big)
    assert not cache.oversized(kept)


def test_a_bound_of_zero_keeps_nothing():
    cache = ReplayCache(limit=0)
    cache.put(uuid.uuid4(), messages(1))
    assert len(cache) == 0
    assert cache.size == 0


def test_putting_an_object_again_replaces_its_entry():
    cache = ReplayCache(limit=100)
    key = uuid.uuid4()
    cache.put(key, messages(30))
    cache.put(key, messages(10, 3))
    assert cache.size == 30
    assert cache.get(key).last_seq == 3


def test_the_default_bound_is_the_setting(settings):
    settings.REALTIME_REPLAY_CACHE_BYTES = 1234
    assert ReplayCache().limit == 1234


# --- the execution topic --------------------------------------------------------------------


def text_graph(user):
    return build_graph(
        user,
        {"t": ("text", {"text": "hi"}), "out": ("output", {"name": "o"})},
        [("t", "text", "out", "value")],
    )


@pytest.mark.django_db(transaction=True)
def test_the_snapshot_is_the_runs_rows_in_one_statement(
    user, other_user, django_assert_num_queries
):
    execution = run_graph(text_graph(user))
    runs = dict(execution.node_runs.values_list("node_id", "status"))
    last_seq = execution.events.order_by("-seq").values_list("seq", flat=True)[0]

    with django_assert_num_queries(1):
        snapshot = execution_snapshot_for_user(user=user, execution_id=execution.id)

    assert snapshot == {
        "status": "succeeded",
        "nodes": {str(node_id): status for node_id, status in runs.items()},
        "last_seq": last_seq,
    }
    assert list(snapshot) == ["status", "nodes", "last_seq"]  # the frame's key order
    assert execution_snapshot_for_user(user=user, execution_id=execution.id, with_nodes=False) == {
        "status": "succeeded",
        "last_seq": last_seq,
    }
    for who, execution_id in ((other_user, execution.id), (user, uuid.uuid4())):
        for with_nodes in (True, False):
            with pytest.raises(NotFoundError):
                execution_snapshot_for_user(
                    user=who, execution_id=execution_id, with_nodes=with_nodes
                )


@pytest.mark.django_db(transaction=True)
def test_the_events_read_is_the_orms(user):
    execution = run_graph(text_graph(user))
    orm = list(execution.events.order_by("seq").values_list(*STORED_FIELDS))

    assert execution_events_after(execution_id=execution.id, after=0) == orm
    assert execution_events_after(execution_id=execution.id, after=2, limit=2) == orm[2:4]
    assert execution_events_after(execution_id=execution.id, after=len(orm)) == []
    assert execution_events_after(execution_id=uuid.uuid4(), after=0) == []
    assert all(ts.tzinfo is not None and isinstance(data, dict) for _, _, data, ts in orm)


@pytest.mark.django_db
def test_the_snapshot_of_a_run_without_node_runs_or_events(user):
    graph = text_graph(user)
    execution = Execution.objects.create(
        owner=user, graph=graph, graph_version=graph.version, snapshot={}, queued_at=timezone.now()
    )

    assert execution_snapshot_for_user(user=user, execution_id=execution.id) == {
        "status": "queued",
        "nodes": {},
        "last_seq": 0,
    }


@pytest.mark.django_db(transaction=True)
def test_a_finished_runs_subscribe_reads_one_row_once_cached(user, django_assert_num_queries):
    execution = run_graph(text_graph(user))
    topic = ExecutionTopic()
    first = topic.open(user=user, object_id=execution.id, after=0)  # reads and keeps the log
    assert replay_cache.get(execution.id) is not None

    # The ownership check, status and last seq, in one statement; nothing else.
    with django_assert_num_queries(1):
        again = topic.open(user=user, object_id=execution.id, after=0)
    with django_assert_num_queries(1):
        later = topic.open(user=user, object_id=execution.id, after=2)

    assert again == first
    assert first.final
    assert first.last_seq == first.snapshot["last_seq"] == len(first.events)
    assert later.events == first.events[2:]
    assert later.last_seq == first.last_seq


@pytest.mark.django_db(transaction=True)
def test_a_run_over_the_bound_is_read_from_after_as_without_the_cache(
    user, settings, django_assert_num_queries
):
    execution = run_graph(text_graph(user))
    topic = ExecutionTopic()
    settings.REALTIME_REPLAY_CACHE_BYTES = 0
    uncached = topic.open(user=user, object_id=execution.id, after=2)
    settings.REALTIME_REPLAY_CACHE_BYTES = 10  # less than one frame
    topic.open(user=user, object_id=execution.id, after=0)  # reads the log, cannot keep it
    assert replay_cache.get(execution.id) is None
    assert replay_cache.oversized(execution.id)

    # Then: the snapshot with the events after 2 (not from 1 again), in one statement.
    with django_assert_num_queries(1) as captured:
        again = topic.open(user=user, object_id=execution.id, after=2)

    assert again == uncached
    assert '"seq" > 2' in captured.captured_queries[-1]["sql"]


@pytest.mark.django_db(transaction=True)
def test_a_cached_run_is_still_not_found_for_another_user(user, other_user):
    execution = run_graph(text_graph(user))
    ExecutionTopic().open(user=user, object_id=execution.id, after=0)
    assert replay_cache.get(execution.id) is not None

    with pytest.raises(NotFoundError):
        ExecutionTopic().open(user=other_user, object_id=execution.id, after=0)
    with pytest.raises(NotFoundError):
        ExecutionTopic().open(user=other_user, object_id=execution.id, after=None)


@pytest.mark.django_db(transaction=True)
def test_a_cached_run_deleted_since_is_not_found(user):
    execution = run_graph(text_graph(user))
    ExecutionTopic().open(user=user, object_id=execution.id, after=0)
    execution.delete()

    with pytest.raises(NotFoundError):
        ExecutionTopic().open(user=user, object_id=execution.id, after=0)


def without_encoded(messages):
    return [{k: v for k, v in m.items() if k != "encoded"} for m in messages]


@pytest.mark.django_db(transaction=True)
def test_a_running_runs_log_is_kept_as_it_grows_and_final_once_it_ended(
    user,
    ollama,  # noqa: F811
    django_assert_max_num_queries,
):
    ollama.enqueue(Behaviour(reply="slow " * 20, token_interval=0.05), path="/api/chat")
    execution = execution_create(user=user, graph=llm_graph(user), inputs={})
    wait_for(execution, statuses={"running"})
    topic = ExecutionTopic()

    running = topic.open(user=user, object_id=execution.id, after=0)

    assert not running.final
    kept = replay_cache.get(execution.id)
    assert not kept.final
    assert kept.snapshot is None
    assert kept.messages[: running.last_seq] == tuple(running.events)
    assert without_encoded(running.events) == topic.events_after(object_id=execution.id, after=0)

    wait_for(execution)
    ended = topic.open(user=user, object_id=execution.id, after=1)

    assert ended.final
    assert without_encoded(ended.events) == topic.events_after(object_id=execution.id, after=1)
    assert replay_cache.get(execution.id).final
    assert replay_cache.get(execution.id).snapshot == ended.snapshot
    with django_assert_max_num_queries(1):
        assert topic.open(user=user, object_id=execution.id, after=1) == ended


async def raw_replay(user, execution_id, after):
    """Every text frame a fresh socket gets for a subscribe, up to the run's final event."""
    sock = await socket_for(user)
    await sock.send_json_to(
        {"type": "subscribe", "topic": f"execution:{execution_id}", "after": after}
    )
    texts = []
    while True:
        text = await sock.receive_from(timeout=5)
        texts.append(text)
        if any(f'"event": "{name}"' in text for name in FINAL):
            break
    assert await sock.receive_nothing(timeout=0.1)
    await sock.disconnect()
    return texts


@pytest.mark.django_db(transaction=True)
async def test_a_cached_replay_is_the_uncached_one_byte_for_byte(user, ollama, settings):  # noqa: F811
    # An LLM node: a replay from before its start also carries the node's text as one
    # node.token frame before node.completed, which the consumer makes per socket.
    execution = await database_sync_to_async(run_graph)(
        await database_sync_to_async(llm_graph)(user)
    )
    llm_started = await database_sync_to_async(
        lambda: (
            ExecutionEvent.objects.get(
                execution=execution, event="node.started", data__type="llm"
            ).seq
        )
    )()
    # From the start, and from after the LLM node's start (no token frame made then).
    for after, tokens in ((0, True), (llm_started, False)):
        settings.REALTIME_REPLAY_CACHE_BYTES = 0
        uncached = await raw_replay(user, execution.id, after)
        assert replay_cache.get(execution.id) is None
        settings.REALTIME_REPLAY_CACHE_BYTES = 16 * 1024 * 1024
        filling = await raw_replay(user, execution.id, after)  # reads, encodes and keeps it
        assert replay_cache.get(execution.id) is not None
        cached = await raw_replay(user, execution.id, after)

        assert filling == uncached
        assert cached == uncached
        assert any('"event": "node.token"' in text for text in uncached) == tokens
        replay_cache.clear()


# --- the writer's log, kept as it commits (ReplayCache.extend) --------------------------------


def numbered(first: int, last: int, size: int = 10) -> list[dict]:
    return [{"seq": seq, "event": "e", "encoded": "x" * size} for seq in range(first, last + 1)]


def read_once(cache: ReplayCache) -> ReplayCache:
    cache.get(uuid.uuid4())  # as a subscribe does
    return cache


def test_a_writers_events_are_kept_from_seq_1_on_as_they_continue_the_log():
    cache = read_once(ReplayCache(limit=1000))
    key = uuid.uuid4()

    cache.extend(key, numbered(1, 1))
    cache.extend(key, numbered(2, 4))

    kept = cache.get(key)
    assert [m["seq"] for m in kept.messages] == [1, 2, 3, 4]
    assert not kept.final
    assert kept.snapshot is None
    assert cache.size == kept.size == 40


def test_events_a_subscribe_read_first_are_skipped_and_the_rest_added():
    cache = read_once(ReplayCache(limit=1000))
    key = uuid.uuid4()
    cache.put(key, tuple(numbered(1, 3)))  # a subscribe read them after they committed

    cache.extend(key, numbered(2, 5))

    assert [m["seq"] for m in cache.get(key).messages] == [1, 2, 3, 4, 5]
    assert cache.size == 50


def test_nothing_is_added_after_a_gap():
    cache = read_once(ReplayCache(limit=1000))
    started, elsewhere = uuid.uuid4(), uuid.uuid4()
    cache.extend(started, numbered(1, 2))

    cache.extend(started, numbered(4, 5))  # seq 3 was written by another process
    cache.extend(elsewhere, numbered(3, 4))  # a run this process did not start
    cache.extend(started, [*numbered(3, 3), *numbered(5, 5)])  # not one run of seqs

    assert [m["seq"] for m in cache.get(started).messages] == [1, 2]
    assert cache.get(elsewhere) is None


def test_a_process_that_never_served_a_subscribe_keeps_nothing():
    cache = ReplayCache(limit=1000)
    key = uuid.uuid4()
    cache.extend(key, numbered(1, 2))
    assert len(cache) == 0
    assert cache.size == 0

    cache.get(key)
    cache.extend(key, numbered(1, 2))
    assert cache.get(key).last_seq == 2

    cache.clear()  # forgets that it was read, too (each test starts afresh)
    cache.extend(key, numbered(1, 2))
    assert len(cache) == 0


def test_a_written_log_is_bounded_like_a_read_one():
    cache = read_once(ReplayCache(limit=100))
    other, key = uuid.uuid4(), uuid.uuid4()
    cache.extend(other, numbered(1, 5))
    cache.extend(key, numbered(1, 6))  # 50 + 60: the least recently used goes
    assert cache.get(other) is None
    assert cache.size == 60

    cache.extend(key, numbered(7, 11))  # 110: over the bound, no longer kept
    assert cache.get(key) is None
    assert cache.oversized(key)
    cache.extend(key, numbered(12, 12))
    assert cache.get(key) is None
    assert cache.size == 0

    off = read_once(ReplayCache(limit=0))
    off.extend(key, numbered(1, 1))
    assert len(off) == 0


def test_a_subscribes_shorter_read_does_not_replace_a_longer_written_log():
    cache = read_once(ReplayCache(limit=1000))
    key = uuid.uuid4()
    cache.extend(key, numbered(1, 5))

    # It read the log's first 3 before the writer's last two were added.
    answer = cache.put(key, tuple(numbered(1, 3)))

    assert answer.last_seq == 5
    assert cache.get(key).last_seq == 5
    assert cache.size == 50


def kept_whole(execution_id, last_seq: int):
    """The writer's log as kept once its last flush's callbacks ran (they run just after the
    commit that wait_for sees)."""
    deadline = time.monotonic() + 5
    while (kept := replay_cache.get(execution_id)) is None or kept.last_seq < last_seq:
        assert time.monotonic() < deadline, "the run's log was not kept"
        time.sleep(0.01)
    return kept


@pytest.mark.django_db(transaction=True)
def test_a_run_executed_here_is_replayed_reading_only_its_snapshot(
    user, settings, django_assert_num_queries
):
    replay_cache.get(uuid.uuid4())  # this process has served a subscribe
    execution = run_graph(text_graph(user))
    topic = ExecutionTopic()
    stored = topic.events_after(object_id=execution.id, after=0)

    kept = kept_whole(execution.id, len(stored))
    assert not kept.final
    assert without_encoded(kept.messages) == stored
    # Each kept frame is its stored event's (compared decoded: a read on PostgreSQL gives a
    # JSON object's keys in jsonb's order).
    assert [json.loads(m["encoded"]) for m in kept.messages] == [
        event_frame(m["topic"], m) for m in stored
    ]

    # The snapshot's statement only; the replay is the very messages the writer kept.
    with django_assert_num_queries(1):
        opened = topic.open(user=user, object_id=execution.id, after=2)
    assert opened.final
    assert len(opened.events) == len(stored) - 2
    assert all(
        sent is written for sent, written in zip(opened.events, kept.messages[2:], strict=True)
    )
    assert replay_cache.get(execution.id).final  # with the snapshot, read after the end

    replay_cache.clear()
    settings.REALTIME_REPLAY_CACHE_BYTES = 0
    uncached = topic.open(user=user, object_id=execution.id, after=2)
    assert without_encoded(opened.events) == without_encoded(uncached.events)
    assert (opened.snapshot, opened.last_seq) == (uncached.snapshot, uncached.last_seq)


@pytest.mark.django_db(transaction=True)
async def test_a_written_logs_replay_is_the_uncached_one(user, ollama, settings):  # noqa: F811
    replay_cache.get(uuid.uuid4())
    execution = await database_sync_to_async(run_graph)(
        await database_sync_to_async(llm_graph)(user)
    )
    stored = await database_sync_to_async(ExecutionTopic().events_after)(
        object_id=execution.id, after=0
    )
    await database_sync_to_async(kept_whole)(execution.id, len(stored))

    written = await raw_replay(user, execution.id, 0)
    replay_cache.clear()
    settings.REALTIME_REPLAY_CACHE_BYTES = 0
    uncached = await raw_replay(user, execution.id, 0)

    assert [json.loads(text) for text in written] == [json.loads(text) for text in uncached]
    assert any('"event": "node.token"' in text for text in written)
    if connection.vendor == "sqlite":  # its JSON keeps the keys' order
        assert written == uncached


# --- the subscribe's one statement (execution_snapshot_and_events_for_user) ------------------


@pytest.mark.django_db(transaction=True)
def test_the_snapshot_and_the_events_are_read_in_one_statement_as_apart(
    user, other_user, django_assert_num_queries
):
    execution = run_graph(text_graph(user))
    last = execution.events.count()

    for after, limit in ((0, 1000), (2, 1000), (1, 2), (last, 1000)):
        with django_assert_num_queries(1):
            snapshot, events = execution_snapshot_and_events_for_user(
                user=user, execution_id=execution.id, after=after, limit=limit
            )
        assert snapshot == execution_snapshot_for_user(user=user, execution_id=execution.id)
        assert events == execution_events_after(execution_id=execution.id, after=after, limit=limit)
    for who, execution_id in ((other_user, execution.id), (user, uuid.uuid4())):
        with pytest.raises(NotFoundError):
            execution_snapshot_and_events_for_user(user=who, execution_id=execution_id, after=0)


@pytest.mark.django_db
def test_the_one_statement_of_a_run_without_node_runs_or_events(user):
    graph = text_graph(user)
    execution = Execution.objects.create(
        owner=user, graph=graph, graph_version=graph.version, snapshot={}, queued_at=timezone.now()
    )

    assert execution_snapshot_and_events_for_user(
        user=user, execution_id=execution.id, after=0
    ) == ({"status": "queued", "nodes": {}, "last_seq": 0}, [])


@pytest.mark.django_db(transaction=True)
def test_a_subscribe_to_a_run_written_elsewhere_is_one_statement(user, django_assert_num_queries):
    execution = run_graph(text_graph(user))  # this process served no subscribe: nothing kept
    assert replay_cache.get(execution.id) is None
    stored = ExecutionTopic().events_after(object_id=execution.id, after=0)

    with django_assert_num_queries(1):
        opened = ExecutionTopic().open(user=user, object_id=execution.id, after=0)

    assert without_encoded(opened.events) == stored
    assert opened.final
    assert opened.snapshot == execution_snapshot_for_user(user=user, execution_id=execution.id)
    assert replay_cache.get(execution.id).final  # kept, with its snapshot
