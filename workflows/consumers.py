"""The ``workflows.execute`` channel consumer that ``manage.py runworker workflows.execute`` serves.

A message ``{"type": "execute", "execution": "<uuid>"}`` is a wake-up: the engine claims the
run with a conditional update, so duplicates do nothing. Runs execute in this process's
bounded pool (``WORKFLOW_MAX_CONCURRENT_EXECUTIONS``).

Channels' worker reads the channel into an unbounded in-process queue whatever the consumer is
doing, so a busy worker would hoard messages that idle workers could run. A message that finds
every slot taken waits up to ``REQUEUE_AFTER`` seconds for one and is otherwise sent back to the
channel for another worker (a worker that dies holding messages loses only wake-ups: the
recovery sweep re-dispatches runs still queued).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

from channels.consumer import AsyncConsumer
from channels.exceptions import ChannelFull
from django.conf import settings

from workflows.engine import execution_run
from workflows.executors import EXECUTE_CHANNEL

logger = logging.getLogger(__name__)

_pool: ThreadPoolExecutor | None = None


def _executor_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(
            max_workers=settings.WORKFLOW_MAX_CONCURRENT_EXECUTIONS, thread_name_prefix="wf-exec"
        )
    return _pool


def _run(execution_id: str) -> None:
    try:
        execution_run(execution_id)
    except Exception:
        logger.exception("execution %s crashed its worker thread", execution_id)


REQUEUE_AFTER = 0.5


class ExecuteConsumer(AsyncConsumer):
    slots: asyncio.Semaphore | None = None

    async def execute(self, message):
        try:
            execution_id = str(uuid.UUID(str(message.get("execution"))))
        except ValueError:
            logger.warning("ignoring an execute message without a valid id: %r", message)
            return
        if self.slots is None:
            self.slots = asyncio.Semaphore(settings.WORKFLOW_MAX_CONCURRENT_EXECUTIONS)
        try:
            await asyncio.wait_for(self.slots.acquire(), timeout=REQUEUE_AFTER)
        except TimeoutError:
            try:
                await self.channel_layer.send(EXECUTE_CHANNEL, message)
            except ChannelFull:
                logger.warning(
                    "%s is full; %s waits for the recovery sweep", EXECUTE_CHANNEL, execution_id
                )
            return
        future = asyncio.get_running_loop().run_in_executor(_executor_pool(), _run, execution_id)
        future.add_done_callback(lambda _f: self.slots.release())
