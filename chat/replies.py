"""The replies this process streams: running one, cancelling it, and its heartbeat.

``reply_run`` is synchronous and runs in whatever thread calls it: the REST view's request
thread, or a thread of ``executor`` (socket sends; never the consumer's shared database thread).
The provider call is ``integrations.llm.completion_stream``, the same streaming, client choice
and cancel path as the workflow engine's LLM nodes. ``reply_run`` hands each frame to ``emit``
(``chat.token`` with an increasing ``index``, then exactly one ``chat.done`` carrying the stored
message) and stores the outcome through the services.

Cancelling: each running reply holds a ``Cancellation``; ``cancel_local`` cancels a reply this
process runs at once (the stream's socket is shut down, which wakes a blocked read). A
``chat.cancel`` handled by another process sets the message's ``cancel_requested``; one watcher
thread per process polls those flags for the replies it runs every ``CHAT_CANCEL_POLL_SECONDS``
and cancels them locally (a reply whose conversation was deleted stops the same way).

Heartbeat: the same watcher writes ``heartbeat_at`` on the replies it runs every
``WORKFLOW_HEARTBEAT_INTERVAL``; a reply still ``streaming`` whose heartbeat is older than
``WORKFLOW_STALE_AFTER`` lost its process, and ``services.replies_interrupt_stale`` ends it
``failed`` (``interrupted``) so the user can regenerate.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from canvas.core import events
from canvas.core.threads import LazyPool
from chat import generation, services
from chat.models import Message
from chat.serializers import message_as_dict
from chat.services import Turn
from integrations import errors
from integrations.cancellation import Cancellation
from integrations.llm import completion_stream

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


class _Running:
    """A reply this process is running: its cancellation."""

    def __init__(self):
        self.cancellation = Cancellation()
        # The watcher saw the row once (so its absence later means it was deleted, not that
        # the transaction that wrote it is not visible yet).
        self.seen = False


class Registry:
    """The replies this process runs, and the watcher that applies cancels from elsewhere."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[uuid.UUID, _Running] = {}
        self._watcher: threading.Thread | None = None
        self._wake = threading.Condition(self._lock)

    def add(self, message_id: uuid.UUID) -> _Running:
        """Register a reply this thread is about to stream; ``remove`` it when done."""
        with self._lock:
            running = self._running[message_id] = _Running()
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(
                    target=self._watch, name="chat-cancel-watcher", daemon=True
                )
                self._watcher.start()
            self._wake.notify_all()
        return running

    def remove(self, message_id: uuid.UUID) -> None:
        with self._lock:
            self._running.pop(message_id, None)

    def cancel(self, message_id: uuid.UUID) -> bool:
        """Cancel a reply if this process runs it; True when it did."""
        with self._lock:
            running = self._running.get(message_id)
        if running is None:
            return False
        running.cancellation.cancel()
        return True

    def _watch(self) -> None:
        # One thread per process: while replies run, one query per poll interval finds the
        # ones another process asked to cancel, and every heartbeat interval one statement
        # marks them alive. Idle, it holds no database connection.
        last_beat = 0.0
        while True:
            with self._lock:
                while not self._running:
                    connection.close()
                    self._wake.wait()
                ids = list(self._running)
            try:
                close_old_connections()
                flags = dict(
                    Message.objects.filter(pk__in=ids).values_list("pk", "cancel_requested")
                )
                wanted = []
                for pk in ids:
                    running = self._running.get(pk)
                    if running is None:
                        continue
                    if pk in flags:
                        running.seen = True
                        if flags[pk]:
                            wanted.append(pk)  # asked to stop
                    elif running.seen:
                        wanted.append(pk)  # gone with its conversation: nobody sees the rest
                if time.monotonic() - last_beat >= settings.WORKFLOW_HEARTBEAT_INTERVAL:
                    last_beat = time.monotonic()
                    services.replies_heartbeat(message_ids=ids)
            except Exception:  # a database hiccup must not end the watcher
                logger.exception("chat cancel watcher could not read cancel flags")
                wanted = []
            for message_id in wanted:
                self.cancel(message_id)
            threading.Event().wait(settings.CHAT_CANCEL_POLL_SECONDS)


registry = Registry()
# The bounded pool socket replies stream in (``CHAT_STREAM_THREADS`` per process).
executor = LazyPool("CHAT_STREAM_THREADS", thread_name_prefix="chat-stream")


def cancel_local(message_id: uuid.UUID) -> bool:
    return registry.cancel(message_id)


def token_frame(*, turn: Turn, index: int, text: str, request_id: Any) -> dict[str, Any]:
    return {
        "type": events.CHAT_TOKEN,
        "conversation": str(turn.conversation.pk),
        "message": str(turn.assistant_message.pk),
        "index": index,
        "count": 1,
        "text": text,
        "request_id": request_id,
    }


def done_frame(*, message: Message, request_id: Any) -> dict[str, Any]:
    return {"type": events.CHAT_DONE, "message": message_as_dict(message), "request_id": request_id}


def reply_run(*, turn: Turn, emit: Emit, request_id: Any = None) -> Message | None:
    """Stream the reply of ``turn``, emitting frames; store and return the outcome.

    Returns None (and emits no ``chat.done``) when another outcome was stored first: a cancel
    that gave the reply up, the conversation was deleted meanwhile, or the reply was declared
    interrupted (its heartbeat went stale).
    """
    message_id = turn.assistant_message.pk
    conversation = turn.conversation
    running = registry.add(message_id)
    parts: list[str] = []

    def on_text(text: str) -> None:
        emit(token_frame(turn=turn, index=len(parts), text=text, request_id=request_id))
        parts.append(text)

    try:
        reply = completion_stream(
            provider=conversation.provider,
            user=conversation.owner,
            model=conversation.model,
            messages=turn.context,
            params=generation.options(conversation),
            cancellation=running.cancellation,
            on_text=on_text,
        )
        usage = reply.usage.as_dict() if reply.usage else None
        model = reply.usage.model if reply.usage else ""
        message = services.reply_complete(
            message_id=message_id, content=reply.text, usage=usage, model=model
        )
    except errors.Cancelled:
        message = services.reply_cancel(message_id=message_id, content="".join(parts))
    except Exception as exc:
        error = generation.describe_error(exc, conversation=conversation)
        message = services.reply_fail(message_id=message_id, error=error, content="".join(parts))
    finally:
        registry.remove(message_id)
    if message is not None:
        emit(done_frame(message=message, request_id=request_id))
    return message


def reply_run_in_thread(*, turn: Turn, emit: Emit, request_id: Any = None) -> Message | None:
    """``reply_run`` for a pool thread: it opens and closes its own database connection."""
    close_old_connections()
    try:
        return reply_run(turn=turn, emit=emit, request_id=request_id)
    finally:
        connection.close()
