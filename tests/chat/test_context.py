"""The context a reply sees: system prompt + history trimmed to CHAT_CONTEXT_MAX_CHARS."""

import pytest

from chat import services
from chat.models import Message

pytestmark = pytest.mark.django_db


def add(conversation, role, content, status="complete"):
    position = (conversation.messages.order_by("-position").first() or Message(position=0)).position
    return Message.objects.create(
        conversation=conversation,
        position=position + 1,
        role=role,
        content=content,
        status=status,
    )


def build(conversation):
    last = conversation.messages.order_by("-position").first()
    return services.context_build(conversation=conversation, up_to_position=last.position)


def test_oldest_messages_go_first_and_none_is_split(conversation, settings):
    # budget 30 - "Be brief." (9) = 21 characters of history
    settings.CHAT_CONTEXT_MAX_CHARS = 30
    add(conversation, "user", "a" * 10)
    add(conversation, "assistant", "b" * 10)
    add(conversation, "user", "c" * 8)
    add(conversation, "assistant", "d" * 6)
    add(conversation, "user", "e" * 5)

    context = build(conversation)

    # e(5) + d(6) + c(8) = 19 fit; b(10) would make 29 > 21: it and everything older go.
    assert context == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "c" * 8},
        {"role": "assistant", "content": "d" * 6},
        {"role": "user", "content": "e" * 5},
    ]


def test_history_has_no_hole_even_if_an_older_small_message_would_fit(conversation, settings):
    settings.CHAT_CONTEXT_MAX_CHARS = 9 + 12
    add(conversation, "user", "x")  # would fit alone, but the big one before it does not
    add(conversation, "assistant", "y" * 20)
    add(conversation, "user", "z" * 10)

    assert [m["content"] for m in build(conversation)] == ["Be brief.", "z" * 10]


def test_the_prompt_always_goes_even_over_budget(conversation, settings):
    settings.CHAT_CONTEXT_MAX_CHARS = 5
    add(conversation, "user", "old")
    add(conversation, "user", "p" * 50)

    assert build(conversation) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "p" * 50},
    ]


def test_failed_and_streaming_replies_are_left_out_cancelled_ones_stay(conversation):
    add(conversation, "user", "one")
    add(conversation, "assistant", "", status="failed")
    add(conversation, "user", "two")
    add(conversation, "assistant", "half an ans", status="cancelled")
    add(conversation, "user", "three")
    add(conversation, "assistant", "", status="streaming")

    assert [m["content"] for m in build(conversation)] == [
        "Be brief.",
        "one",
        "two",
        "half an ans",
        "three",
    ]


def test_no_system_prompt_no_system_message(user):
    conversation = services.conversation_create(owner=user, provider="ollama", model="m")
    add(conversation, "user", "hi")

    assert build(conversation) == [{"role": "user", "content": "hi"}]
