"""A cancel flag that bites: the callbacks that shut in-flight sockets run when it is set.

A blocked socket read does not notice a flag, so whoever opens a stream registers how to shut
it (``on_cancel(stream.cancel)``). LLM and HTTP nodes get one through their ``NodeContext``;
chat replies hold one each. Thread-safe: the streaming thread registers, any thread cancels.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class Cancellation:
    def __init__(self) -> None:
        self.event = threading.Event()
        self._callbacks: list[Callable[[], Any]] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` (from the cancelling thread) on cancel; at once if cancelled."""
        with self._lock:
            if not self.event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def cancel(self) -> None:
        with self._lock:
            if self.event.is_set():
                return
            self.event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a cancel callback failed")
