"""Reads of conversations and messages, always through the owner (another user's is a 404)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from canvas.core.exceptions import ApplicationError, NotFoundError
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


@dataclass
class MessagePage:
    """A page of messages, oldest first, and whether older / newer ones exist beyond it."""

    messages: list[Message]
    count: int
    has_older: bool
    has_newer: bool


def message_page(
    *,
    conversation: Conversation,
    page_size: int,
    before: Any = None,
    after: Any = None,
) -> MessagePage:
    """The newest ``page_size`` messages before the message ``before`` (or the newest of all),
    or with ``after`` the oldest ``page_size`` after that message; oldest first either way.

    Three queries whatever the page size: the cursor's position, the page (one more row than
    asked tells whether the page is not the last), and the count.
    """
    if before is not None and after is not None:
        raise ApplicationError(
            "Give 'before' or 'after', not both.",
            errors={"before": [{"field": "before", "message": "Not with 'after'."}]},
        )
    queryset = Message.objects.filter(conversation=conversation)
    has_older = has_newer = False
    if after is not None:
        cursor = _cursor_position(conversation=conversation, value=after, field="after")
        rows = list(queryset.filter(position__gt=cursor).order_by("position")[: page_size + 1])
        has_newer = len(rows) > page_size
        rows = rows[:page_size]
        has_older = True
    else:
        if before is not None:
            cursor = _cursor_position(conversation=conversation, value=before, field="before")
            queryset = queryset.filter(position__lt=cursor)
            has_newer = True
        rows = list(queryset.order_by("-position")[: page_size + 1])
        has_older = len(rows) > page_size
        rows = rows[:page_size][::-1]
    count = Message.objects.filter(conversation=conversation).count()
    return MessagePage(messages=rows, count=count, has_older=has_older, has_newer=has_newer)


def _cursor_position(*, conversation: Conversation, value: Any, field: str) -> int:
    # A cursor is a message id of this conversation; anything else is a 400 on that field
    # (the conversation itself was already found, so there is no existence to leak).
    try:
        message_id = uuid.UUID(str(value))
    except ValueError:
        message_id = None
    position = (
        Message.objects.filter(conversation=conversation, pk=message_id)
        .values_list("position", flat=True)
        .first()
        if message_id
        else None
    )
    if position is None:
        raise ApplicationError(
            f"'{field}' must be the id of a message of this conversation.",
            errors={field: [{"field": field, "message": "Not a message of this conversation."}]},
        )
    return position


def message_streaming_for_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    return Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING)
