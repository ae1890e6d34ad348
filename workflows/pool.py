"""Slow nodes in threads: the per-process node pool and one run's calls in flight.

A node whose type is ``blocking`` (it waits on the network) runs in a thread of the
per-process pool (``WORKFLOW_NODE_THREADS``). ``InFlight`` holds one run's calls: it starts
them, and their threads report back through its ``results`` queue, which only the run's
coordinator thread reads (``workflows/engine.py``):

- ``("done", ctx, (outputs, cache key))``, ``("error", ctx, message)``, ``("cancelled", ctx,
  None)``: the call ended;
- ``("retrying", ctx, (error, done))``: the node starts over; its thread waits on ``done``
  until the coordinator has written ``node.retrying`` (its tokens must not overtake it);
- ``("wake", None, None)``: look at the cancel flag now.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from canvas.core.connections import release_connection
from canvas.core.threads import LazyPool
from workflows.nodes.base import Node, NodeCancelled, NodeContext, NodeError, checked_outputs

logger = logging.getLogger(__name__)

node_pool = LazyPool("WORKFLOW_NODE_THREADS", thread_name_prefix="wf-node")


class InFlight:
    """One run's slow nodes in the pool, by node id."""

    def __init__(self) -> None:
        self.results: queue.Queue = queue.Queue()
        self.calls: dict[str, NodeContext] = {}

    def __len__(self) -> int:
        return len(self.calls)

    def wake(self) -> None:
        self.results.put(("wake", None, None))

    def start(self, ctx: NodeContext, cls: type[Node], key: str) -> None:
        ctx.on_retry = self._report_retry
        self.calls[ctx.node_id] = ctx
        node_pool().submit(self._execute, ctx, cls, key)

    def current(self, kind: str, ctx: NodeContext | None, payload) -> bool:
        """Whether a result is from a call still in flight (not one already failed by its
        timeout, nor an earlier attempt); a stale retry report is released."""
        if kind == "wake":
            return False
        if self.calls.get(ctx.node_id) is not ctx:
            if kind == "retrying":
                payload[1].set()
            return False
        return True

    def forget(self, nid: str) -> None:
        self.calls.pop(nid, None)

    def cancel_all(self) -> None:
        for ctx in list(self.calls.values()):
            ctx.cancel()

    def wait_time(self, now: float, wait: float) -> float:
        """``wait`` shortened to the next deadline or held-back token text."""
        for ctx in self.calls.values():
            if ctx.deadline is not None:
                wait = min(wait, ctx.deadline - now)
            if ctx.tokens is not None and ctx.tokens.holding:
                wait = min(wait, ctx.tokens.interval)
        return wait

    def expired(self, now: float) -> list[NodeContext]:
        """Send held-back tokens that are due; return the calls past their deadline."""
        late = []
        for ctx in list(self.calls.values()):
            if ctx.tokens is not None:
                ctx.tokens.flush_if_due()
            if ctx.deadline is not None and now >= ctx.deadline:
                late.append(ctx)
        return late

    def drain(self, grace: float) -> tuple[list[NodeContext], list[NodeContext]]:
        """Cancel every call and wait up to ``grace`` seconds for them to return. Returns the
        calls that returned and the ones that did not; none is in flight afterwards."""
        self.cancel_all()
        ended: list[NodeContext] = []
        deadline = time.monotonic() + grace
        while self.calls and time.monotonic() < deadline:
            try:
                kind, ctx, payload = self.results.get(
                    timeout=max(0.01, deadline - time.monotonic())
                )
            except queue.Empty:
                break
            if kind == "retrying":
                payload[1].set()
                continue
            if self.current(kind, ctx, payload):
                ended.append(self.calls.pop(ctx.node_id))
        abandoned, self.calls = list(self.calls.values()), {}
        return ended, abandoned

    # --- in the pool thread -----------------------------------------------------------------

    def _execute(self, ctx: NodeContext, cls: type[Node], key: str) -> None:
        try:
            outputs = checked_outputs(cls().run(ctx))
            if ctx.tokens is not None:
                ctx.tokens.flush()
            self.results.put(("done", ctx, (outputs, key)))
        except NodeCancelled:
            self.results.put(("cancelled", ctx, None))
        except NodeError as exc:
            self.results.put(("error", ctx, exc.message))
        except Exception as exc:
            if ctx.cancelled:
                self.results.put(("cancelled", ctx, None))
            else:
                logger.exception("node %s (%s) raised", ctx.node_id, ctx.node_type)
                self.results.put(("error", ctx, f"{type(exc).__name__}: {exc}"))
        finally:
            release_connection()

    def _report_retry(self, ctx: NodeContext, error: str) -> None:
        # The coordinator writes the event, then lets the node go on.
        done = threading.Event()
        self.results.put(("retrying", ctx, (error, done)))
        done.wait(timeout=5.0)
