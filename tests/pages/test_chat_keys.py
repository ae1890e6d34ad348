"""The chat page (a streamed reply, a provider's failure in its own words) and the keys page
(hints only), in headless Chromium against a real Daphne."""

import pytest
from playwright.sync_api import expect

from chat.models import Conversation, Message
from integrations.models import ApiKey
from tests.fakes.base import Behaviour

from .conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "The sky looks blue because air scatters short blue waves of sunlight the most."


def test_chat_with_a_streamed_reply(new_page, user, page_ollama):
    page = new_page("/chat/")
    # Groq is down here (nothing listens at its address): the page says so in words.
    expect(page.locator(".providers-down")).to_contain_text("groq")

    page.get_by_label("Title").fill("Why blue")
    expect(page.get_by_label("Model")).to_have_value("llama3.2:latest")
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".conversations").get_by_role("button", name="Why blue")).to_be_visible()
    conversation = Conversation.objects.get(owner=user, title="Why blue")
    assert (conversation.provider, conversation.model) == ("ollama", "llama3.2:latest")

    page_ollama.enqueue(Behaviour(reply=REPLY, token_interval=0.15), path="/api/chat")
    page.locator('textarea[name="content"]').fill("Why is the sky blue?")
    page.locator('textarea[name="content"]').press("Enter")

    streaming = page.locator(".message.status-streaming .content")
    expect(streaming).to_contain_text("The sky looks")
    partial = streaming.inner_text()
    assert REPLY.startswith(partial)
    assert partial != REPLY
    screenshot(page, "chat")
    reply = page.locator('.message.role-assistant[data-status="complete"] .content')
    expect(reply).to_have_text(REPLY, timeout=15_000)
    expect(page.locator(".message.role-user .content")).to_have_text("Why is the sky blue?")
    stored = Message.objects.get(conversation=conversation, role="assistant")
    assert (stored.status, stored.content) == ("complete", REPLY)


def test_a_failing_provider_is_explained_not_dumped(new_page, user, page_ollama):
    Conversation.objects.create(owner=user, title="Missing", provider="ollama", model="nope")
    page = new_page("/chat/")
    page.locator(".conversations").get_by_role("button", name="Missing").click()
    page.locator('textarea[name="content"]').fill("hello")
    page.get_by_role("button", name="Send").click()

    failed = page.locator('.message.role-assistant[data-status="failed"]')
    expect(failed.get_by_role("alert")).to_contain_text("ollama pull")
    assert "Traceback" not in page.content()


def test_keys_show_hints_only(new_page, user):
    secret = "gsk_abcdefghijklmnopqrstuvwxyz0123456789wxyz"
    page = new_page("/keys/")
    page.get_by_label("Name").fill("work")
    page.get_by_label("Secret").fill(secret)
    page.get_by_role("button", name="Add key").click()

    row = page.locator("table.keys tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("gsk_…wxyz")
    expect(row).to_contain_text("active")
    assert secret not in page.content()

    page.get_by_role("button", name="Deactivate groq key work").click()
    expect(page.get_by_role("button", name="Activate groq key work", exact=True)).to_be_visible()
    assert ApiKey.objects.get(owner=user).is_active is False

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete groq key work").click()
    expect(row).to_have_count(0)
    assert not ApiKey.objects.filter(owner=user).exists()
