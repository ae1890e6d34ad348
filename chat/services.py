"""Writes to conversations and messages.

A reply is written in two steps, so nothing is lost when the provider fails and no database
transaction stays open during a model call:

1. ``message_begin`` (or ``reply_begin`` to regenerate) stores the user message and an empty
   assistant message ``streaming`` in one transaction, and returns a ``Turn``: the rows and
   the context to send (system prompt + history trimmed to ``CHAT_CONTEXT_MAX_CHARS``).
2. The provider call runs (``chat.replies``), then ``reply_complete`` / ``reply_fail`` /
   ``reply_cancel`` store the outcome. Those only change a reply that is still ``streaming``
   (a conditional UPDATE), so one outcome wins when a cancel and the end race.

While a reply streams, its process writes ``heartbeat_at`` (``replies_heartbeat``); a reply
whose heartbeat is older than ``WORKFLOW_STALE_AFTER`` lost its process, and
``replies_interrupt_stale`` (the recovery sweep, and every regenerate) ends it ``failed`` with
the code ``interrupted``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from canvas.core.events import CHAT_DONE, conversation_topic
from canvas.core.exceptions import ApplicationError
from canvas.core.idempotency import IdempotencyRecord
from canvas.core.publisher import publish_on_commit
from chat.models import TITLE_MAX_LENGTH, ChatProvider, Conversation, Message
from chat.selectors import conversation_get_for_user, message_streaming_for_conversation
from chat.serializers import message_as_dict

TITLE_FROM_MESSAGE_CHARS = 60
OPTION_RULES: dict[str, tuple[type, float | None, float | None]] = {
    # name: (type, minimum, maximum)
    "temperature": (float, 0.0, 2.0),
    "max_tokens": (int, 1, 1_000_000),
    "seed": (int, None, None),
}


@dataclass
class Turn:
    """A reply about to be generated: its rows and the context the provider gets."""

    conversation: Conversation
    user_message: Message | None
    assistant_message: Message
    context: list[dict[str, str]] = field(default_factory=list)


# --- conversations -------------------------------------------------------------------------


def _field_error(name: str, message: str) -> ApplicationError:
    return ApplicationError(message, errors={name: [{"field": name, "message": message}]})


def _clean_options(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise _field_error("options", "options must be an object.")
    cleaned: dict[str, Any] = {}
    for name, value in options.items():
        if name not in OPTION_RULES:
            raise _field_error(
                "options", f"Unknown option {name!r}; known: {', '.join(OPTION_RULES)}."
            )
        kind, low, high = OPTION_RULES[name]
        if value is None:
            continue
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (kind is int and not float(value).is_integer()):
            raise _field_error(
                "options", f"{name} must be {'an integer' if kind is int else 'a number'}."
            )
        value = kind(value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise _field_error("options", f"{name} must be between {low} and {high}.")
        cleaned[name] = value
    return cleaned


def _clean_conversation(conversation: Conversation) -> None:
    if conversation.provider not in ChatProvider.values:
        raise _field_error(
            "provider", f"Unknown provider; choose one of {', '.join(ChatProvider.values)}."
        )
    if not conversation.model.strip():
        raise _field_error("model", "The model may not be blank.")
    if len(conversation.system_prompt) > settings.CHAT_MAX_SYSTEM_PROMPT_CHARS:
        raise _field_error(
            "system_prompt",
            f"The system prompt is limited to {settings.CHAT_MAX_SYSTEM_PROMPT_CHARS} characters.",
        )
    conversation.options = _clean_options(conversation.options)
    conversation.full_clean()


@transaction.atomic
def conversation_create(
    *,
    owner,
    provider: str,
    model: str,
    title: str = "",
    system_prompt: str = "",
    options: dict[str, Any] | None = None,
) -> Conversation:
    """A new conversation. The model is not checked: Ollama may pull it later."""
    conversation = Conversation(
        owner=owner,
        provider=provider,
        model=model.strip(),
        title=title.strip(),
        system_prompt=system_prompt,
        options=options or {},
    )
    _clean_conversation(conversation)
    conversation.save()
    return conversation


@transaction.atomic
def conversation_update(*, conversation: Conversation, **changes: Any) -> Conversation:
    """Change ``title``, ``provider``, ``model``, ``system_prompt`` or ``options``; later
    replies use the new values, earlier ones keep the ``model`` that wrote them."""
    allowed = {"title", "provider", "model", "system_prompt", "options"}
    unknown = set(changes) - allowed
    if unknown:
        raise ApplicationError(f"Cannot change {', '.join(sorted(unknown))}.")
    for name, value in changes.items():
        if name in {"title", "model"} and isinstance(value, str):
            value = value.strip()
        setattr(conversation, name, value)
    _clean_conversation(conversation)
    conversation.save()
    return conversation


@transaction.atomic
def conversation_delete(*, conversation: Conversation) -> None:
    """Delete with its messages. A reply still streaming finds its row gone and stores nothing."""
    conversation.delete()


# --- context -------------------------------------------------------------------------------


def context_build(*, conversation: Conversation, up_to_position: int) -> list[dict[str, str]]:
    """System prompt + the newest history that fits ``CHAT_CONTEXT_MAX_CHARS``, oldest first.

    The message at ``up_to_position`` (the prompt) always goes; older ones are added newest
    first while they fit whole, and the first that does not fit ends the history (a message is
    never split, and history never has a hole). Failed and still-streaming replies carry no
    text the model wrote and are left out; a cancelled reply is what the user saw, so it stays.
    """
    budget = settings.CHAT_CONTEXT_MAX_CHARS - len(conversation.system_prompt)
    history: list[dict[str, str]] = []
    rows = (
        Message.objects.filter(conversation=conversation, position__lte=up_to_position)
        .exclude(status__in=[Message.Status.FAILED, Message.Status.STREAMING])
        .order_by("-position")
        .values_list("role", "content")
    )
    for role, content in rows.iterator(chunk_size=100):
        if history and len(content) > budget:
            break
        history.append({"role": role, "content": content})
        budget -= len(content)
    history.reverse()
    if conversation.system_prompt:
        history.insert(0, {"role": "system", "content": conversation.system_prompt})
    return history


# --- messages ------------------------------------------------------------------------------


def _clean_content(content: Any) -> str:
    if not isinstance(content, str):
        raise _field_error("content", "content must be a string.")
    if not content.strip():
        raise _field_error("content", "content may not be blank.")
    if len(content) > settings.CHAT_MAX_CONTENT_CHARS:
        raise _field_error(
            "content", f"content is limited to {settings.CHAT_MAX_CONTENT_CHARS} characters."
        )
    if "\x00" in content:
        # PostgreSQL text refuses NUL; refuse it the same way on every database.
        raise _field_error("content", "content may not contain NUL characters.")
    return content


def _next_position(conversation: Conversation) -> int:
    # Precondition: holding the conversation's row lock (positions are allocated one at a time).
    last = Message.objects.filter(conversation=conversation).aggregate(last=Max("position"))
    return (last["last"] or 0) + 1


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    if len(line) <= TITLE_FROM_MESSAGE_CHARS:
        return line
    return line[: TITLE_FROM_MESSAGE_CHARS - 1].rstrip() + "…"


def _touch(conversation: Conversation, **fields: Any) -> None:
    fields["updated_at"] = timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(**fields)
    for name, value in fields.items():
        setattr(conversation, name, value)


@transaction.atomic
def message_begin(
    *, user, conversation_id: Any, content: Any, idempotency: IdempotencyRecord | None = None
) -> Turn:
    """Store the user's message and an empty ``streaming`` reply; return the turn to run.

    The conversation gets a title from its first message when it has none. The request's
    ``idempotency`` key, if any, is linked to the user's message in the same transaction.
    """
    content = _clean_content(content)
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id, lock=True)
    position = _next_position(conversation)
    user_message = Message.objects.create(
        conversation=conversation,
        position=position,
        role=Message.Role.USER,
        content=content,
        status=Message.Status.COMPLETE,
    )
    assistant_message = Message.objects.create(
        conversation=conversation,
        position=position + 1,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model=conversation.model,
        heartbeat_at=timezone.now(),
    )
    if conversation.title:
        _touch(conversation)
    else:
        _touch(conversation, title=_title_from(content)[:TITLE_MAX_LENGTH])
    if idempotency is not None:
        idempotency.link(user_message.id)
    return Turn(
        conversation=conversation,
        user_message=user_message,
        assistant_message=assistant_message,
        context=context_build(conversation=conversation, up_to_position=position),
    )


@transaction.atomic
def reply_begin(*, user, conversation_id: Any) -> Turn:
    """Regenerate: drop the replies after the last user message and start a new one to it."""
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id, lock=True)
    replies_interrupt_stale(conversation=conversation)
    if message_streaming_for_conversation(conversation=conversation).exists():
        raise ApplicationError(
            "A reply is still being written; cancel it first.", code="conversation_busy"
        )
    user_message = (
        Message.objects.filter(conversation=conversation, role=Message.Role.USER)
        .order_by("-position")
        .first()
    )
    if user_message is None:
        raise ApplicationError(
            "There is nothing to regenerate: send a message first.", code="nothing_to_regenerate"
        )
    Message.objects.filter(
        conversation=conversation, position__gt=user_message.position, role=Message.Role.ASSISTANT
    ).delete()
    assistant_message = Message.objects.create(
        conversation=conversation,
        position=_next_position(conversation),
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model=conversation.model,
        heartbeat_at=timezone.now(),
    )
    _touch(conversation)
    return Turn(
        conversation=conversation,
        user_message=user_message,
        assistant_message=assistant_message,
        context=context_build(conversation=conversation, up_to_position=user_message.position),
    )


def _finish(message_id: Any, *, stale=None, **fields: Any) -> Message | None:
    """Store a reply's outcome if it is still streaming (and, with ``stale``, its heartbeat is
    older than that); None when another outcome won (a cancel that gave up on it, a stale
    heartbeat declared interrupted) or the conversation was deleted."""
    with transaction.atomic():
        rows = Message.objects.filter(pk=message_id, status=Message.Status.STREAMING)
        if stale is not None:
            rows = rows.filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))
        updated = rows.update(**fields, updated_at=timezone.now())
        if not updated:
            return None
        message = Message.objects.select_related("conversation").get(pk=message_id)
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=timezone.now())
    return message


def reply_complete(
    *, message_id: Any, content: str, usage: dict | None, model: str = ""
) -> Message | None:
    """The provider finished: store the text and its usage."""
    fields: dict[str, Any] = {"status": Message.Status.COMPLETE, "content": content, "usage": usage}
    if model:
        fields["model"] = model
    return _finish(message_id, **fields)


def reply_fail(*, message_id: Any, error: dict[str, Any], content: str = "") -> Message | None:
    """The call failed: store the error (and whatever text arrived before it)."""
    return _finish(message_id, status=Message.Status.FAILED, error=error, content=content)


def reply_cancel(*, message_id: Any, content: str, usage: dict | None = None) -> Message | None:
    """The user stopped the reply: keep what arrived."""
    return _finish(message_id, status=Message.Status.CANCELLED, content=content, usage=usage)


@transaction.atomic
def reply_cancel_request(*, user, conversation_id: Any) -> list[Any]:
    """Ask every process streaming a reply of this conversation to stop it (``cancel_requested``
    is polled by the process that runs it). Returns the ids of the replies asked to stop."""
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    streaming = message_streaming_for_conversation(conversation=conversation)
    ids = list(streaming.values_list("pk", flat=True))
    if not ids:
        raise ApplicationError(
            "No reply of this conversation is being written.", code="nothing_to_cancel"
        )
    Message.objects.filter(pk__in=ids).update(cancel_requested=True, updated_at=timezone.now())
    return ids


def reply_abandon(*, message_id: Any) -> Message | None:
    """A reply asked to stop that no process stopped (its process died): store it cancelled.

    Only a reply whose cancel was requested and is still streaming; a live runner that stops
    later finds it no longer streaming and stores nothing.
    """
    with transaction.atomic():
        updated = Message.objects.filter(
            pk=message_id, status=Message.Status.STREAMING, cancel_requested=True
        ).update(status=Message.Status.CANCELLED, updated_at=timezone.now())
        if not updated:
            return None
        return Message.objects.get(pk=message_id)


def replies_heartbeat(*, message_ids: list[Any]) -> None:
    """Mark the replies this process streams as alive."""
    Message.objects.filter(pk__in=message_ids, status=Message.Status.STREAMING).update(
        heartbeat_at=timezone.now()
    )


def replies_interrupt_stale(*, conversation: Conversation | None = None) -> list[Message]:
    """End ``failed`` (code ``interrupted``) every streaming reply whose process died: its
    heartbeat is older than ``WORKFLOW_STALE_AFTER``. Its subscribers get its ``chat.done``.
    Returns the replies it ended."""
    cutoff = timezone.now() - timedelta(seconds=settings.WORKFLOW_STALE_AFTER)
    stale = Message.objects.filter(status=Message.Status.STREAMING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff)
    )
    if conversation is not None:
        stale = stale.filter(conversation=conversation)
    ended = []
    for message_id, provider in stale.values_list("pk", "conversation__provider")[:500]:
        error = {
            "code": "interrupted",
            "message": "The reply stopped: the process writing it ended. Regenerate to try again.",
            "provider": provider,
        }
        with transaction.atomic():
            message = _finish(message_id, status=Message.Status.FAILED, error=error, stale=cutoff)
            if message is not None:
                ended.append(message)
                done_publish_on_commit(message)
    return ended


def done_publish_on_commit(message: Message) -> None:
    """A reply's ``chat.done`` to its conversation's subscribers (no ``request_id``: nobody
    on a socket asked for this outcome)."""
    publish_on_commit(
        conversation_topic(message.conversation_id),
        CHAT_DONE,
        {"message": message_as_dict(message), "request_id": None},
    )
