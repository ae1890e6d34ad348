"""Runs one reply: the provider stream, its frames, and the stored outcome; and cancelling it.

``reply_run`` is synchronous and runs in whatever thread calls it: the REST view's request
thread, or a thread of ``executor`` (socket sends; never the consumer's shared database thread).
It hands each frame to ``emit`` (``chat.token`` with an increasing ``index``, then exactly one
``chat.done`` carrying the stored message) and stores the outcome through the services.

Cancelling: ``cancel_local`` stops a reply this process runs at once (the stream's socket is
shut down, which wakes a blocked read). A ``chat.cancel`` handled by another process sets the
message's ``cancel_requested``; one watcher thread per process polls those flags for the replies
it runs every ``CHAT_CANCEL_POLL_SECONDS`` and cancels them locally (a reply whose conversation
was deleted stops the same way).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from canvas.core import events
from chat import generation, services
from chat.models import Message
from chat.serializers import message_as_dict
from chat.services import Turn
from integrations import errors
from integrations.keys import ApiKeyMissing

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


class _Running:
    """A reply this process is running: its cancel flag and, once open, its stream."""

    def __init__(self):
        self.cancelled = threading.Event()
        # The watcher saw the row once (so its absence later means it was deleted, not that
        # the transaction that wrote it is not visible yet).
        self.seen = False
        self._stream = None
        self._lock = threading.Lock()

    def attach(self, stream) -> None:
        with self._lock:
            self._stream = stream
            cancelled = self.cancelled.is_set()
        if cancelled:
            stream.cancel()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            stream = self._stream
        if stream is not None:
            stream.cancel()


class Registry:
    """The replies this process runs, and the watcher that applies cancels from elsewhere."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[uuid.UUID, _Running] = {}
        self._watcher: threading.Thread | None = None
        self._wake = threading.Condition(self._lock)

    def add(self, message_id: uuid.UUID) -> _Running:
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
        running.cancel()
        return True

    def running_ids(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self._running)

    def _watch(self) -> None:
        # One thread per process: while replies run, one query per poll interval finds the
        # ones another process asked to cancel. Idle, it holds no database connection.
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
            except Exception:  # a database hiccup must not end the watcher
                logger.exception("chat cancel watcher could not read cancel flags")
                wanted = []
            for message_id in wanted:
                self.cancel(message_id)
            threading.Event().wait(settings.CHAT_CANCEL_POLL_SECONDS)


registry = Registry()
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The bounded pool socket replies stream in (``CHAT_STREAM_THREADS`` per process)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.CHAT_STREAM_THREADS, thread_name_prefix="chat-stream"
            )
        return _executor


def cancel_local(message_id: uuid.UUID) -> bool:
    return registry.cancel(message_id)


def token_frame(*, turn: Turn, index: int, text: str, request_id: Any) -> dict[str, Any]:
    return {
        "type": events.CHAT_TOKEN,
        "conversation": str(turn.conversation.pk),
        "message": str(turn.assistant_message.pk),
        "index": index,
        "text": text,
        "request_id": request_id,
    }


def done_frame(*, message: Message, request_id: Any) -> dict[str, Any]:
    return {"type": events.CHAT_DONE, "message": message_as_dict(message), "request_id": request_id}


def reply_run(*, turn: Turn, emit: Emit, request_id: Any = None) -> Message | None:
    """Stream the reply of ``turn``, emitting frames; store and return the outcome.

    Returns None (and emits no ``chat.done``) when another outcome was stored first: a cancel
    that gave the reply up, or the conversation was deleted meanwhile.
    """
    message_id = turn.assistant_message.pk
    conversation = turn.conversation
    running = registry.add(message_id)
    client = None
    text = ""
    message: Message | None = None
    try:
        try:
            if running.cancelled.is_set():
                raise errors.Cancelled("cancelled before the call", provider=conversation.provider)
            client = generation.client_for(conversation=conversation)
            stream = generation.open_stream(
                client=client, conversation=conversation, messages=turn.context
            )
            running.attach(stream)
            index = 0
            for item in stream:
                if isinstance(item, str) and item:
                    text += item
                    emit(token_frame(turn=turn, index=index, text=item, request_id=request_id))
                    index += 1
            usage = stream.usage.as_dict() if stream.usage else None
            model = stream.usage.model if stream.usage else ""
            message = services.reply_complete(
                message_id=message_id, content=text, usage=usage, model=model
            )
        except errors.Cancelled:
            message = services.reply_cancel(message_id=message_id, content=text)
        except (errors.IntegrationError, ApiKeyMissing) as exc:
            if running.cancelled.is_set():
                # A cancel that interrupted the call may surface as a transport error.
                message = services.reply_cancel(message_id=message_id, content=text)
            else:
                error = generation.describe_error(exc, conversation=conversation)
                message = services.reply_fail(message_id=message_id, error=error, content=text)
        except Exception as exc:
            error = generation.describe_error(exc, conversation=conversation)
            message = services.reply_fail(message_id=message_id, error=error, content=text)
    finally:
        registry.remove(message_id)
        if client is not None:
            client.close()  # the stream closed itself when its iteration ended
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
