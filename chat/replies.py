"""The replies this process streams: running one, cancelling it, and its heartbeat.

``reply_run`` is synchronous and runs in whatever thread calls it: the REST view's request
thread, or a thread of ``executor`` (socket sends; never the consumer's shared database thread).
The provider call is ``integrations.llm.completion_stream``, the same streaming, client choice
and cancel path as the workflow engine's LLM nodes. ``reply_run`` hands each frame to ``emit``
(``chat.token`` with an increasing ``index``, then exactly one ``chat.done`` carrying the stored
message) and stores the outcome through the services.

Cancelling and heartbeat go through the process's cancel watcher, as the engine's runs do
(``integrations.cancellation``): each running reply holds a ``Cancellation`` watched under
``reply_flags``. ``cancel_local`` cancels a reply this process runs at once (the stream's socket
is shut down, which wakes a blocked read). A ``chat.cancel`` handled by another process sets the
message's ``cancel_requested``, which the watcher of the process running the reply sees within
two ``CANCEL_POLL_SECONDS`` (a reply whose conversation was deleted stops the same way).

Heartbeat: the watcher writes ``heartbeat_at`` on the replies this process runs every
``WORKFLOW_HEARTBEAT_INTERVAL`` (``ReplyFlags.heartbeat``); a reply still ``streaming`` whose
heartbeat is older than ``WORKFLOW_STALE_AFTER`` lost its process, and
``services.replies_interrupt_stale`` ends it ``failed`` (``interrupted``) so the user can
regenerate.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection

from canvas.core import events
from canvas.core.threads import LazyPool
from chat import generation, services
from chat.models import Message
from chat.serializers import message_as_dict
from chat.services import Turn
from integrations import errors
from integrations.cancellation import CancelFlags, Cancellation, watcher
from integrations.llm import completion_stream

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


class ReplyFlags(CancelFlags):
    """The cancel flags and heartbeats of the replies this process streams."""

    def read(self, keys: list[Any]) -> dict[Any, bool]:
        return dict(Message.objects.filter(pk__in=keys).values_list("pk", "cancel_requested"))

    def heartbeat(self, keys: list[Any]) -> None:
        services.replies_heartbeat(message_ids=keys)


reply_flags = ReplyFlags()
# The bounded pool socket replies stream in (``CHAT_STREAM_THREADS`` per process).
executor = LazyPool("CHAT_STREAM_THREADS", thread_name_prefix="chat-stream")


def cancel_local(message_id: uuid.UUID) -> bool:
    """Cancel a reply if this process streams it; True when it did."""
    return watcher.cancel(reply_flags, message_id)


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
    cancellation = Cancellation()
    watcher.watch(reply_flags, message_id, cancellation)
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
            cancellation=cancellation,
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
        watcher.unwatch(reply_flags, message_id, cancellation)
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
