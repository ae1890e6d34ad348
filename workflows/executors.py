"""Where executions run: ``WORKFLOW_EXECUTOR=inline`` or ``channels``.

- ``inline`` (default): a bounded thread pool (``WORKFLOW_MAX_CONCURRENT_EXECUTIONS``) in the
  serving process.
- ``channels``: ``{"type": "execute", "execution": id}`` goes to the channel
  ``workflows.execute``; ``manage.py runworker workflows.execute`` processes serve it
  (``workflows.consumers.ExecuteConsumer``), on any number of machines.

A dispatch is a wake-up, never the source of truth: the engine claims a run with a conditional
update, so a duplicate message does nothing and a lost one is sent again by the recovery sweep
(``workflows/recovery.py``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from workflows.engine import execution_run

logger = logging.getLogger(__name__)

EXECUTE_CHANNEL = "workflows.execute"


class InlineExecutor:
    def __init__(self, max_workers: int):
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="wf-exec")

    def dispatch(self, execution_id: uuid.UUID | str) -> None:
        self.pool.submit(_run_logged, str(execution_id))


def _run_logged(execution_id: str) -> None:
    try:
        execution_run(execution_id)
    except Exception:
        logger.exception("execution %s crashed its executor thread", execution_id)


class _LoopThread:
    """One long-lived event loop for this process's channel-layer sends (channels-redis keeps
    a connection pool per loop: a loop per call would leak them)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="wf-dispatch", daemon=True).start()

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class ChannelsExecutor:
    def __init__(self):
        self._loop: _LoopThread | None = None
        self._lock = threading.Lock()

    def dispatch(self, execution_id: uuid.UUID | str) -> None:
        from channels.exceptions import ChannelFull
        from channels.layers import get_channel_layer

        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
        layer = get_channel_layer()
        message = {"type": "execute", "execution": str(execution_id)}
        # channels-redis refuses a send past the channel's capacity (100 by default): give the
        # workers a moment to drain it, then leave the run to the recovery sweep (it stays
        # queued, and queued runs older than WORKFLOW_STALE_AFTER are dispatched again).
        for pause in (0.05, 0.1, 0.2, 0.4, None):
            try:
                self._loop.run(layer.send(EXECUTE_CHANNEL, message))
                return
            except ChannelFull:
                if pause is None:
                    logger.warning(
                        "%s is full; execution %s waits for the recovery sweep",
                        EXECUTE_CHANNEL,
                        execution_id,
                    )
                    return
                time.sleep(pause)


_executor = None
_executor_lock = threading.Lock()


def get_executor():
    global _executor
    with _executor_lock:
        if _executor is None:
            kind = settings.WORKFLOW_EXECUTOR
            if kind == "channels":
                _executor = ChannelsExecutor()
            elif kind == "inline":
                _executor = InlineExecutor(settings.WORKFLOW_MAX_CONCURRENT_EXECUTIONS)
            else:
                raise ValueError(f"WORKFLOW_EXECUTOR must be 'inline' or 'channels', not {kind!r}")
        return _executor


def reset_executor() -> None:
    """Forget the executor (tests that switch ``WORKFLOW_EXECUTOR``)."""
    global _executor
    with _executor_lock:
        _executor = None
