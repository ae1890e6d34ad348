"""Reads of conversations and messages, always through the owner (another user's is a 404)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from canvas.core.exceptions import NotFoundError
from canvas.core.ids import parse_id
from chat.models import Conversation, Message


def conversation_list_for_user(*, user) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=user).order_by("-updated_at", "id")


def conversation_get_for_user(*, user, conversation_id: Any, lock: bool = False) -> Conversation:
    """The user's conversation, or ``NotFoundError``. ``lock`` takes the row lock (call inside
    a transaction): writers of one conversation then allocate message positions one at a time.
    """
    queryset = Conversation.objects.filter(owner=user)
    if lock:
        queryset = queryset.select_for_update()
    try:
        return queryset.get(pk=parse_id(conversation_id, what="conversation"))
    except Conversation.DoesNotExist:
        raise NotFoundError("No such conversation.") from None


def message_list(*, conversation: Conversation) -> QuerySet[Message]:
    """A conversation's messages (``chat.views`` pages them by ``position``)."""
    return Message.objects.filter(conversation=conversation)


def message_streaming_for_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    return Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING)


def message_pair_for_user(*, user, message_id: Any) -> tuple[Message, Message | None]:
    """A user's message and the reply after it (``None`` when there is none any more)."""
    message = (
        Message.objects.select_related("conversation")
        .filter(pk=message_id, conversation__owner=user)
        .first()
    )
    if message is None:
        raise NotFoundError("No such message.")
    reply = Message.objects.filter(
        conversation=message.conversation, position=message.position + 1
    ).first()
    return message, reply
