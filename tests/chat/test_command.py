"""``manage.py chat``: an interactive terminal chat that stores the conversation like the API."""

import io
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from chat.models import Conversation
from tests.fakes.base import Behaviour
from tests.live import BASE_DIR, database_url_for

# The reply streams in a pool thread with its own database connection: commit.
pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "The sky is blue because of Rayleigh scattering."


def run(*lines, **options):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "chat",
        stdin=io.StringIO("".join(f"{line}\n" for line in lines)),
        stdout=out,
        stderr=err,
        **options,
    )
    return out.getvalue(), err.getvalue()


def test_chat_streams_replies_and_stores_the_conversation(user, ollama):
    ollama.enqueue(Behaviour(reply="First answer."), Behaviour(reply="Second answer."))

    out, err = run(
        "hello",
        "",
        "and again",
        "/quit",
        "never sent",
        provider="ollama",
        model="llama3.2",
        user="alice",
        system="Be brief.",
    )

    assert "First answer." in out
    assert "Second answer." in out
    assert err == ""
    conversation = Conversation.objects.get(owner=user)
    assert (conversation.provider, conversation.model) == ("ollama", "llama3.2")
    assert conversation.system_prompt == "Be brief."
    assert conversation.title == "hello"
    assert list(conversation.messages.values_list("role", "content", "status")) == [
        ("user", "hello", "complete"),
        ("assistant", "First answer.", "complete"),
        ("user", "and again", "complete"),
        ("assistant", "Second answer.", "complete"),
    ]
    assert len(ollama.requests) == 2
    assert [m["content"] for m in ollama.requests[1].json()["messages"]] == [
        "Be brief.",
        "hello",
        "First answer.",
        "and again",
    ]


def test_chat_continues_a_conversation_and_regenerates(user, conversation, ollama):
    ollama.enqueue(Behaviour(reply="Meh."), Behaviour(reply="Better."))

    out, _ = run("question", "/regenerate", user="alice", conversation=str(conversation.pk))

    assert "Meh." in out
    assert "Better." in out
    assert list(conversation.messages.values_list("content", flat=True)) == [
        "question",
        "Better.",
    ]


def test_provider_errors_are_explained_stored_and_exit_non_zero(user, ollama):
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 reply failed"):
        call_command(
            "chat",
            stdin=io.StringIO("hi\n"),
            stdout=io.StringIO(),
            stderr=err,
            provider="ollama",
            model="mistral",
            user="alice",
        )

    assert "ollama pull mistral" in err.getvalue()
    assert "not found" in err.getvalue()  # the provider's own words
    conversation = Conversation.objects.get(owner=user)
    assert list(conversation.messages.values_list("role", "status")) == [
        ("user", "complete"),
        ("assistant", "failed"),
    ]


def test_needs_a_known_user_and_a_model(user):
    with pytest.raises(CommandError, match="--user"):
        run("hi", model="llama3.2")
    with pytest.raises(CommandError, match="No active user"):
        run("hi", model="llama3.2", user="nobody")
    with pytest.raises(CommandError, match="--model"):
        run("hi", user="alice")


def test_the_real_command_in_a_subprocess(user, ollama):
    from django.db import connection

    env = {
        **os.environ,
        "DATABASE_URL": database_url_for(connection.settings_dict),
        "DEBUG": "1",
        "OLLAMA_BASE_URL": ollama.url,
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "chat", "--model", "llama3.2", "--user", "alice"],
        input="Why is the sky blue?\n",
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
        env=env,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert REPLY in result.stdout
    message = Conversation.objects.get(owner=user).messages.get(role="assistant")
    assert message.content == REPLY
