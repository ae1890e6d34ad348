"""Chat on the socket: the ``conversation:<id>`` topic and the ``chat.send`` / ``chat.cancel``
handlers (protocol: docs/realtime.md, docs/chat.md).

``chat.send`` is counted by the ``chat`` throttle in the same per-user bucket as REST sends
(over the rate: an ``error`` ``throttled`` with ``retry_after``, nothing stored). It then
stores the user message and an empty reply (a short database call), then streams
the reply in a thread of ``chat.replies.executor()`` — never in the consumer's shared database
thread — and returns at once, so the socket keeps reading (a ``chat.cancel`` on the same socket
is handled mid-stream). Frames come back from the thread through a queue on the socket's loop,
in order, and each goes

- to the group ``conversation.<id>``: every socket subscribed to ``conversation:<id>`` (other
  tabs, other processes) relays it;
- straight to the sender when the sender is not subscribed (a subscribed sender gets it through
  the group), so each socket sees each frame once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from canvas.core import events, realtime
from canvas.core.exceptions import ApplicationError
from canvas.core.ids import parse_id
from canvas.core.publisher import publish_on_commit
from canvas.core.throttles import ChatThrottle, count_socket_message
from chat import replies, selectors, services
from chat.models import Message

logger = logging.getLogger(__name__)

_DONE = object()
# Background tasks of the handlers, kept referenced until they end (the loop holds only weak
# references to tasks).
_tasks: set[asyncio.Task] = set()


@realtime.register_topic
class ConversationTopic(realtime.Topic):
    kind = events.CONVERSATION

    def open(self, *, user, object_id: uuid.UUID, after: int | None) -> realtime.Opened:
        conversation = selectors.conversation_get_for_user(user=user, conversation_id=object_id)
        streaming = selectors.message_streaming_for_conversation(conversation=conversation)
        return realtime.Opened(
            snapshot={"streaming": [str(pk) for pk in streaming.values_list("pk", flat=True)]}
        )


def frame_publish(topic: str, frame: dict[str, Any]) -> None:
    """Publish a chat frame (``{"type": "chat.token" | "chat.done", ...}``) to the topic."""
    data = dict(frame)
    publish_on_commit(topic, data.pop("type"), data)


def conversation_emitter(conversation_id: Any) -> replies.Emit:
    """An ``emit`` for ``reply_run`` that publishes each frame to the conversation's sockets."""
    topic = events.conversation_topic(conversation_id)

    def emit(frame: dict[str, Any]) -> None:
        frame_publish(topic, frame)

    return emit


def _spawn(coroutine) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _conversation_field(message: dict[str, Any]) -> Any:
    value = message.get("conversation")
    if value is None:
        raise ApplicationError("'conversation' is required.", code="invalid")
    return value


@realtime.message_handler("chat.send")
async def chat_send(consumer, message: dict[str, Any]) -> None:
    turn = await database_sync_to_async(_send_begin)(user=consumer.user, message=message)
    _spawn(_stream(consumer, turn, message.get("request_id")))


def _send_begin(*, user, message: dict[str, Any]) -> services.Turn:
    # Counted first, as DRF counts a REST send before its view reads anything: in the same
    # scope and per-user bucket, so a user cannot dodge the limit by switching transport.
    # Over the rate, ThrottledError: nothing is stored and no reply starts.
    count_socket_message(ChatThrottle, user=user)
    conversation_id = parse_id(_conversation_field(message), what="conversation")
    return services.message_begin(
        user=user, conversation_id=conversation_id, content=message.get("content")
    )


async def _stream(consumer, turn: services.Turn, request_id: Any) -> None:
    loop = asyncio.get_running_loop()
    frames: asyncio.Queue = asyncio.Queue()
    topic = events.conversation_topic(turn.conversation.pk)

    def emit(frame: dict[str, Any]) -> None:  # runs in the streaming thread
        loop.call_soon_threadsafe(frames.put_nowait, frame)

    def run() -> Message | None:
        try:
            return replies.reply_run_in_thread(turn=turn, emit=emit, request_id=request_id)
        finally:
            loop.call_soon_threadsafe(frames.put_nowait, _DONE)

    async def to_sender(frame: dict[str, Any]) -> None:
        # A subscribed sender gets the frame through the group: send it only once.
        if topic in getattr(consumer, "subscriptions", {}):
            return
        try:
            await consumer.send_json(frame)
        except Exception:  # the sender's socket closed; the others still get the frames
            logger.debug("chat frame not sent to a closed socket", exc_info=True)

    future = loop.run_in_executor(replies.executor(), run)
    held = None
    while (frame := held if held is not None else await frames.get()) is not _DONE:
        frame, held = _with_queued_tokens(frame, frames)
        frame_publish(topic, frame)
        await to_sender(frame)
    try:
        stored = await future
    except Exception:
        logger.exception("chat reply thread failed")
        stored = None
    if stored is None:
        # Another outcome won: a cancel gave the reply up (its chat.done went to the group,
        # which an unsubscribed sender does not hear) or the conversation was deleted.
        await to_sender(await database_sync_to_async(_final_frame)(turn, request_id))


# A coalesced chat.token frame carries at most this much text.
COALESCE_MAX_CHARS = 8192


def _with_queued_tokens(frame: dict[str, Any], frames: asyncio.Queue) -> tuple[dict, Any]:
    """``frame`` joined with the chat.token frames already queued behind it, as one frame
    ``{index: the first's, count: how many, text: joined}``: when the provider streams faster
    than the sockets are written to, one frame instead of many. Returns the frame and the next
    queued item it could not join (None when the queue ran empty)."""
    if frame["type"] != "chat.token":
        return frame, None
    while not frames.empty():
        following = frames.get_nowait()
        if (
            following is _DONE
            or following["type"] != "chat.token"
            or following["message"] != frame["message"]
            or following["index"] != frame["index"] + frame["count"]
            or len(frame["text"]) + len(following["text"]) > COALESCE_MAX_CHARS
        ):
            return frame, following
        frame = {
            **frame,
            "count": frame["count"] + following["count"],
            "text": frame["text"] + following["text"],
        }
    return frame, None


def _final_frame(turn: services.Turn, request_id: Any) -> dict[str, Any]:
    message = Message.objects.filter(pk=turn.assistant_message.pk).first()
    if message is None:
        return {
            "type": "error",
            "code": "not_found",
            "message": "The conversation was deleted.",
            "request_id": request_id,
        }
    return replies.done_frame(message=message, request_id=request_id)


@realtime.message_handler("chat.cancel")
async def chat_cancel(consumer, message: dict[str, Any]) -> None:
    conversation_id = parse_id(_conversation_field(message), what="conversation")
    ids = await database_sync_to_async(services.reply_cancel_request)(
        user=consumer.user, conversation_id=conversation_id
    )
    for message_id in ids:
        # This process runs it: stop at once. Elsewhere, its process's watcher sees the flag.
        replies.cancel_local(message_id)
        # A runner still waiting for the provider's first byte, or one whose process died,
        # cannot store the cancel itself: give it up after a grace period.
        _spawn(_abandon_if_orphaned(message_id, conversation_id))


async def _abandon_if_orphaned(message_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
    # A reply asked to stop that is still streaming after every watcher had time to see the
    # flag has no live process: store it cancelled so the conversation is not stuck.
    await asyncio.sleep(settings.CANCEL_POLL_SECONDS * 4 + 1.0)
    stored = await database_sync_to_async(services.reply_abandon)(message_id=message_id)
    if stored is not None:
        conversation_emitter(conversation_id)(replies.done_frame(message=stored, request_id=None))
