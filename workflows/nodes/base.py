"""The node contract: what a node type declares, what its ``run`` sees, what it may raise.

A node type is one class that subclasses ``Node`` (one module per type in this package, listed
in ``NODE_TYPES``). From ``graphs.registry.NodeType`` it inherits the description the graph
editor and validation use (``type``, ``label``, ports, ``config_schema``); here it adds its
behaviour:

- ``run(self, ctx) -> dict``: the outputs by port name. Return only the ports the node
  produced (a condition returns the port it took; the other port's edges are dead and what
  only they feed is skipped). Raise ``NodeError`` for a failure the user can act on; any other
  exception fails the node too, with its type and message.
- ``blocking``: the node waits on the network (LLM, HTTP): it runs in the per-process node
  pool, and may be cancelled or time out mid-call (``ctx.on_cancel``). Cheap nodes run in the
  run's coordinator thread, which is faster than a hand-off.
- ``cacheable``: the outputs are a function of the type, the config and the inputs; the engine
  then answers a repeat from the output cache. ``is_cacheable(config)`` refines it per config
  (an LLM only at temperature 0 with a seed); ``"cache": false`` in a config always opts out.
- ``streams_text``: the node streams its ``text`` output as ``node.token`` while it runs
  (``ctx.emit_token``), so the tokens joined are that output (docs/realtime.md, order per socket).
- ``safe_to_repeat``: a call that was in flight when its worker died may be made again by the
  worker that resumes the run; ``is_safe_to_repeat(config)`` refines it (an HTTP POST is not).

The engine reads these attributes and calls these methods; it never guesses a default.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Protocol

from django.conf import settings
from django.contrib.auth import get_user_model

from graphs.registry import NodeType, registry
from integrations.cancellation import Cancellation

logger = logging.getLogger(__name__)

# Requests a node makes in all (the adapter's retries before a response began, plus the
# node's own retries of a stream that broke after it began).
MAX_NODE_ATTEMPTS = 3


class NodeError(Exception):
    """A node failed for a reason its user can act on; ``message`` names the cause."""

    def __init__(self, message: str, *, code: str = "node_error", details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}


class NodeCancelled(Exception):
    """Raised inside a node when its run was cancelled (or it timed out) mid-way."""


class TokenSink(Protocol):
    """Where a streaming node's text goes (``workflows.events.TokenStream``)."""

    interval: float

    def push(self, text: str) -> None: ...
    def flush(self) -> None: ...
    def restart(self, *, attempt: int) -> None: ...


@dataclass
class NodeContext:
    """What a node's ``run`` sees: its config (schema defaults filled in), its inputs by port,
    the execution's inputs, and the run's facilities (tokens, cancel, retries, usage)."""

    execution_id: uuid.UUID
    owner_id: int
    node_id: str
    node_type: str
    label: str
    config: dict[str, Any]
    inputs: dict[str, Any]
    execution_inputs: dict[str, Any]
    deadline: float | None = None
    attempt: int = 1
    tokens: TokenSink | None = None
    # A streaming node stores its provider's usage record here (also when it fails).
    usage: dict[str, Any] | None = None
    cancellation: Cancellation = field(default_factory=Cancellation)
    # Set by the engine: writes ``node.retrying`` and returns once it is published.
    on_retry: Callable[[NodeContext, str], None] | None = None

    @cached_property
    def owner(self):
        return get_user_model().objects.get(pk=self.owner_id)

    @property
    def cancel_event(self) -> threading.Event:
        return self.cancellation.event

    @property
    def cancelled(self) -> bool:
        return self.cancellation.cancelled

    def check_cancelled(self) -> None:
        if self.cancellation.cancelled:
            raise NodeCancelled

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` (from another thread) when the node is cancelled or times out.

        Used to shut an in-flight stream's socket: a blocked read does not notice a flag.
        """
        self.cancellation.on_cancel(callback)

    def cancel(self) -> None:
        self.cancellation.cancel()

    def remaining(self) -> float | None:
        """Seconds until this node's timeout, or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def emit_token(self, text: str) -> None:
        if self.tokens is not None:
            self.tokens.push(text)

    def retrying(self, error: str) -> None:
        """Report that the node starts over (a broken stream): ``node.retrying`` is written
        and published before this returns, and the token stream restarts at index 0."""
        self.attempt += 1
        if self.tokens is not None:
            self.tokens.flush()
            self.tokens.restart(attempt=self.attempt)
        if self.on_retry is not None:
            self.on_retry(self, error)


class Node(NodeType):
    """The base of every node type: declare the class attributes, implement ``run``."""

    # Runs in the node pool (it waits on the network) instead of the coordinator thread.
    blocking: ClassVar[bool] = False
    # Outputs depend only on type, config and inputs: a repeat answers from the cache.
    cacheable: ClassVar[bool] = False
    # May run again after the worker running it died mid-call.
    safe_to_repeat: ClassVar[bool] = True
    # Streams its ``text`` output as ``node.token`` while it runs (the tokens joined are that
    # output): the socket sends a subscriber the text it missed before the node's end.
    streams_text: ClassVar[bool] = False

    @classmethod
    def is_cacheable(cls, config: dict[str, Any]) -> bool:
        """Whether this config's outputs may come from (and go to) the cache."""
        return cls.cacheable and config.get("cache") is not False

    @classmethod
    def is_safe_to_repeat(cls, config: dict[str, Any]) -> bool:
        """Whether a call of this config that was in flight may be made again."""
        return cls.safe_to_repeat

    def run(self, ctx: NodeContext) -> dict[str, Any]:
        """The outputs by port name; see the module docstring."""
        raise NotImplementedError(f"node type {self.type!r} has no behaviour")


def node_class(type_name: str) -> type[Node]:
    """The registered ``Node`` subclass for ``type_name``.

    ``UnknownNodeType`` when none is registered, ``TypeError`` when a registered type has no
    behaviour (it does not subclass ``Node``).
    """
    cls = registry.get(type_name)
    if not issubclass(cls, Node):
        raise TypeError(f"node type {type_name!r} ({cls.__module__}) does not subclass Node")
    return cls


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def checked_outputs(outputs: Any) -> dict:
    """What ``run`` returned, as the engine stores it: a mapping of ports within
    ``WORKFLOW_MAX_OUTPUT_BYTES`` (``NodeError`` otherwise), NUL characters replaced."""
    if outputs is None:
        outputs = {}
    if not isinstance(outputs, dict):
        raise NodeError("The node returned something other than a mapping of ports.")
    limit = settings.WORKFLOW_MAX_OUTPUT_BYTES
    dumped = json.dumps(outputs, default=str)
    size = len(dumped)
    if "\\u0000" in dumped:
        # PostgreSQL cannot store NUL in jsonb (a binary HTTP body, a model's odd output):
        # it becomes U+FFFD on every database alike.
        outputs = _without_nul(outputs)
    if size > limit:
        raise NodeError(
            f"Its output is {size} bytes, more than the limit of {limit} bytes.",
            code="output_too_large",
        )
    return outputs
