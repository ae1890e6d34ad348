"""The cancel watcher alone, with an in-memory kind of work: flags, deletion, age, heartbeat.

The engine's runs and chat's replies through it are ``tests/workflows/test_cancel_watch.py``.
"""

import threading
import time
import uuid

import pytest

from integrations.cancellation import CancelFlags, Cancellation, CancelWatcher
from tests.live import wait_until


class MemoryFlags(CancelFlags):
    """Rows in a dict: key → cancel flag; a missing key is a deleted row."""

    def __init__(self):
        self.rows: dict = {}
        self.reads: list[list] = []
        self.beats: list[list] = []

    def read(self, keys):
        self.reads.append(sorted(keys))
        return {key: self.rows[key] for key in keys if key in self.rows}

    def heartbeat(self, keys):
        self.beats.append(sorted(keys))


@pytest.fixture
def quick(settings):
    settings.CANCEL_POLL_SECONDS = 0.05
    settings.WORKFLOW_HEARTBEAT_INTERVAL = 0.05


def test_a_flag_cancels_the_work_it_belongs_to_and_only_it(quick):
    watcher, flags = CancelWatcher(), MemoryFlags()
    asked, other = uuid.uuid4(), uuid.uuid4()
    flags.rows = {asked: False, other: False}
    cancellations = {asked: Cancellation(), other: Cancellation()}
    for key, cancellation in cancellations.items():
        watcher.watch(flags, key, cancellation)
    wait_until(lambda: flags.reads, timeout=5.0)

    flags.rows[asked] = True  # what a cancel in another process leaves: the flag
    assert cancellations[asked].event.wait(2.0)

    assert not cancellations[other].cancelled
    assert flags.beats  # the heartbeat of the work still running
    for key, cancellation in cancellations.items():
        watcher.unwatch(flags, key, cancellation)


def test_a_deleted_row_cancels_but_one_never_seen_does_not(quick):
    watcher, flags = CancelWatcher(), MemoryFlags()
    seen, unseen = uuid.uuid4(), uuid.uuid4()
    flags.rows = {seen: False}  # ``unseen``: written by a transaction not visible yet
    cancellations = {seen: Cancellation(), unseen: Cancellation()}
    for key, cancellation in cancellations.items():
        watcher.watch(flags, key, cancellation)
    wait_until(lambda: len(flags.reads) >= 2, timeout=5.0)

    del flags.rows[seen]  # its conversation (or graph) was deleted
    assert cancellations[seen].event.wait(2.0)
    assert not cancellations[unseen].cancelled
    watcher.unwatch(flags, unseen, cancellations[unseen])


def test_work_younger_than_one_interval_costs_no_read(settings):
    settings.CANCEL_POLL_SECONDS = 0.3
    watcher, flags = CancelWatcher(), MemoryFlags()
    short, long = uuid.uuid4(), uuid.uuid4()
    cancellation = Cancellation()
    watcher.watch(flags, short, cancellation)
    time.sleep(0.1)
    watcher.unwatch(flags, short, cancellation)  # a run that ended before one interval
    watcher.watch(flags, long, cancellation)
    wait_until(lambda: flags.reads, timeout=5.0)

    assert all(short not in keys for keys in flags.reads)
    assert flags.reads[0] == [long]
    watcher.unwatch(flags, long, cancellation)


def test_a_cancel_in_this_process_acts_at_once_and_says_whether_it_ran_here(quick):
    watcher, flags = CancelWatcher(), MemoryFlags()
    key, cancellation = uuid.uuid4(), Cancellation()
    shut = threading.Event()
    cancellation.on_cancel(shut.set)
    watcher.watch(flags, key, cancellation)

    assert watcher.cancel(flags, key) is True
    assert shut.is_set()
    assert watcher.cancel(flags, uuid.uuid4()) is False
    assert watcher.cancel(MemoryFlags(), key) is False  # keys are per kind
    watcher.unwatch(flags, key, Cancellation())  # not its entry: a newer runner's, say
    assert watcher.watching() == [(flags, key)]
    watcher.unwatch(flags, key, cancellation)
    assert watcher.watching() == []


def test_a_failing_read_does_not_end_the_watcher(quick):
    class Flaky(MemoryFlags):
        def read(self, keys):
            if not self.reads:
                self.reads.append([])
                raise RuntimeError("database hiccup")
            return super().read(keys)

    watcher, flags = CancelWatcher(), Flaky()
    key, cancellation = uuid.uuid4(), Cancellation()
    flags.rows = {key: True}
    watcher.watch(flags, key, cancellation)
    assert cancellation.event.wait(2.0)
    watcher.unwatch(flags, key, cancellation)
