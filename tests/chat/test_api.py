"""The chat REST API against the fake Ollama and Groq servers on loopback."""

import pytest

from chat import services
from chat.models import Conversation, Message
from tests.fakes.base import Behaviour
from tests.fakes.groq import TEST_KEY

pytestmark = pytest.mark.django_db

FAKE_OLLAMA_REPLY = "The sky is blue because of Rayleigh scattering."
FAKE_GROQ_REPLY = "Fast inference is fun."


def url(conversation=None, suffix=""):
    if conversation is None:
        return "/api/conversations/"
    return f"/api/conversations/{getattr(conversation, 'pk', conversation)}/{suffix}"


def send(client, conversation, content="Why is the sky blue?"):
    return client.post(url(conversation, "messages/"), {"content": content}, format="json")


# --- conversations -------------------------------------------------------------------------


def test_create_conversation_does_not_check_the_model(api_client, ollama):
    response = api_client.post(
        url(), {"provider": "ollama", "model": "not-pulled-yet"}, format="json"
    )

    assert response.status_code == 201, response.data
    body = response.json()
    assert body["model"] == "not-pulled-yet"
    assert body["title"] == ""
    assert set(body) == {
        "id",
        "title",
        "provider",
        "model",
        "system_prompt",
        "options",
        "created_at",
        "updated_at",
    }
    assert ollama.requests == []  # nothing asked the provider


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"model": "llama3.2"}, "provider"),
        ({"provider": "openai", "model": "gpt"}, "provider"),
        ({"provider": "ollama"}, "model"),
        ({"provider": "ollama", "model": ""}, "model"),
        ({"provider": "ollama", "model": "m", "title": "x" * 201}, "title"),
        ({"provider": "ollama", "model": "m" * 201}, "model"),
        ({"provider": "ollama", "model": "m", "options": []}, "options"),
        ({"provider": "ollama", "model": "m", "options": {"temperature": 3}}, "options"),
        ({"provider": "ollama", "model": "m", "options": {"temperature": "hot"}}, "options"),
        ({"provider": "ollama", "model": "m", "options": {"max_tokens": 1.5}}, "options"),
        ({"provider": "ollama", "model": "m", "options": {"top_k": 3}}, "options"),
        ({"provider": "ollama", "model": "m", "title": "a\x00b"}, "title"),
    ],
)
def test_create_conversation_rejects_bad_input_with_field_errors(api_client, payload, field):
    response = api_client.post(url(), payload, format="json")

    assert response.status_code == 400, response.data
    body = response.json()
    assert field in (body.get("errors") or body), body


def test_system_prompt_limit(api_client, conversation, settings):
    settings.CHAT_MAX_SYSTEM_PROMPT_CHARS = 10

    response = api_client.patch(url(conversation), {"system_prompt": "x" * 11}, format="json")

    assert response.status_code == 400
    assert "system_prompt" in response.json()["errors"]


def test_list_shows_only_own_conversations_newest_activity_first(
    api_client, user, conversation, other_conversation
):
    older = services.conversation_create(owner=user, provider="groq", model="llama-3.1-8b")
    services.conversation_update(conversation=conversation, title="bumped")

    response = api_client.get(url())

    assert response.status_code == 200
    ids = [c["id"] for c in response.json()["results"]]
    assert ids == [str(conversation.pk), str(older.pk)]


def test_list_query_count_does_not_grow(api_client, user, django_assert_num_queries):
    for i in range(5):
        services.conversation_create(owner=user, provider="ollama", model=f"m{i}")
    # auth token, count, page
    with django_assert_num_queries(3):
        response = api_client.get(url())
    assert response.json()["count"] == 5


def test_update_and_delete(api_client, conversation):
    response = api_client.patch(
        url(conversation), {"title": "Renamed", "options": {"temperature": 0.2}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["title"] == "Renamed"
    assert response.json()["options"] == {"temperature": 0.2}

    response = api_client.put(url(conversation), {"provider": "groq", "model": "x"}, format="json")
    assert response.status_code == 200
    assert response.json()["system_prompt"] == ""  # PUT replaces: left out goes back to default

    assert api_client.delete(url(conversation)).status_code == 204
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


@pytest.mark.parametrize(
    ("method", "suffix", "payload"),
    [
        ("get", "", None),
        ("patch", "", {"title": "mine now"}),
        ("put", "", {"provider": "ollama", "model": "x"}),
        ("delete", "", None),
        ("get", "messages/", None),
        ("post", "messages/", {"content": "hi"}),
        ("post", "regenerate/", None),
    ],
)
def test_another_users_conversation_is_404(
    api_client, other_conversation, ollama, method, suffix, payload
):
    response = getattr(api_client, method)(url(other_conversation, suffix), payload, format="json")

    assert response.status_code == 404
    assert ollama.requests == []
    other_conversation.refresh_from_db()
    assert other_conversation.title == ""
    assert not other_conversation.messages.exists()


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_malformed_or_missing_id_is_404(api_client, bad_id):
    assert api_client.get(url(bad_id)).status_code == 404
    assert api_client.get(url(bad_id, "messages/")).status_code == 404


def test_anonymous_is_refused(anon_client, conversation):
    assert anon_client.get(url()).status_code in {401, 403}
    assert anon_client.post(url(conversation, "messages/"), {"content": "x"}).status_code in {
        401,
        403,
    }


# --- sending -------------------------------------------------------------------------------


def test_send_stores_both_messages_with_usage_and_sets_the_title(api_client, conversation, ollama):
    response = send(api_client, conversation, "Why is the sky blue?")

    assert response.status_code == 201, response.data
    body = response.json()
    user_message, reply = body["user_message"], body["assistant_message"]
    assert user_message["role"] == "user"
    assert user_message["content"] == "Why is the sky blue?"
    assert reply["role"] == "assistant"
    assert reply["status"] == "complete"
    assert reply["content"] == FAKE_OLLAMA_REPLY
    assert reply["model"] == "llama3.2"
    assert reply["error"] is None
    assert reply["usage"]["prompt_tokens"] == 7  # "Be brief." + "Why is the sky blue?"
    assert reply["usage"]["completion_tokens"] == len(FAKE_OLLAMA_REPLY.split())
    assert reply["usage"]["finish_reason"] == "stop"

    sent = ollama.requests[-1].json()
    assert sent["model"] == "llama3.2"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
    conversation.refresh_from_db()
    assert conversation.title == "Why is the sky blue?"
    stored = list(conversation.messages.values_list("role", "status", "content"))
    assert stored == [
        ("user", "complete", "Why is the sky blue?"),
        ("assistant", "complete", FAKE_OLLAMA_REPLY),
    ]


def test_history_goes_with_the_next_message_and_options_reach_the_provider(
    api_client, conversation, ollama
):
    services.conversation_update(
        conversation=conversation, options={"temperature": 0.5, "max_tokens": 64, "seed": 7}
    )
    send(api_client, conversation, "first")
    send(api_client, conversation, "second")

    sent = ollama.requests[-1].json()
    assert [m["content"] for m in sent["messages"]] == [
        "Be brief.",
        "first",
        FAKE_OLLAMA_REPLY,
        "second",
    ]
    assert sent["options"] == {"temperature": 0.5, "num_predict": 64, "seed": 7}


def test_given_title_is_kept(api_client, user, ollama):
    conversation = services.conversation_create(
        owner=user, provider="ollama", model="llama3.2", title="Mine"
    )
    send(api_client, conversation)
    conversation.refresh_from_db()
    assert conversation.title == "Mine"


def test_long_first_message_gives_a_short_title(api_client, conversation, ollama):
    send(api_client, conversation, "word " * 100)
    conversation.refresh_from_db()
    assert len(conversation.title) <= 60
    assert conversation.title.endswith("…")


def test_groq_reply_uses_the_owners_key(api_client, groq_conversation, groq, groq_key):
    response = send(api_client, groq_conversation, "hello")

    assert response.status_code == 201
    reply = response.json()["assistant_message"]
    assert reply["status"] == "complete"
    assert reply["content"] == FAKE_GROQ_REPLY
    assert reply["usage"]["total_tokens"] is not None
    assert groq.requests[-1].headers["Authorization"] == f"Bearer {TEST_KEY}"


@pytest.mark.parametrize(
    ("content", "status"),
    [("", 400), ("   ", 400), (None, 400), (123, 400), ("a\x00b", 400)],
)
def test_bad_content_is_400_and_stores_nothing(api_client, conversation, ollama, content, status):
    response = api_client.post(url(conversation, "messages/"), {"content": content}, format="json")

    assert response.status_code == status
    assert "content" in response.json()["errors"]
    assert not conversation.messages.exists()
    assert ollama.requests == []


def test_content_limit(api_client, conversation, ollama, settings):
    settings.CHAT_MAX_CONTENT_CHARS = 10
    # The serializer's max_length is read at import; the service enforces the live setting.
    response = send(api_client, conversation, "x" * 11)
    assert response.status_code == 400
    assert not conversation.messages.exists()


# --- provider errors: the user message stays, the reply is a failed message in words --------


def assert_failed(response, code, *words):
    assert response.status_code == 201, response.data
    body = response.json()
    assert body["user_message"]["status"] == "complete"
    reply = body["assistant_message"]
    assert reply["status"] == "failed"
    assert reply["error"]["code"] == code
    for word in words:
        assert word in reply["error"]["message"], reply["error"]["message"]
    assert "Traceback" not in reply["error"]["message"]
    return reply


def test_ollama_model_not_pulled(api_client, user, ollama):
    conversation = services.conversation_create(owner=user, provider="ollama", model="mistral")

    reply = assert_failed(send(api_client, conversation), "model_not_found", "ollama pull mistral")

    assert list(conversation.messages.values_list("role", "status")) == [
        ("user", "complete"),
        ("assistant", "failed"),
    ]
    listed = api_client.get(url(conversation, "messages/")).json()["results"]
    assert [m["id"] for m in listed][-1] == reply["id"]


def test_ollama_not_running(api_client, conversation, ollama_down):
    assert_failed(send(api_client, conversation), "provider_unavailable", "Ollama is not running")


def test_ollama_server_error_after_retries(api_client, conversation, ollama):
    ollama.enqueue(Behaviour(status=500, error="boom"), Behaviour(status=500, error="boom"))

    reply = assert_failed(send(api_client, conversation), "provider_error", "boom")

    assert len(ollama.requests) == 2  # one retry (HTTP_MAX_RETRIES=1)
    assert reply["error"]["provider"] == "ollama"


def test_ollama_server_error_then_success_is_retried(api_client, conversation, ollama):
    ollama.enqueue(Behaviour(status=503, error="loading"))

    response = send(api_client, conversation)

    assert response.json()["assistant_message"]["status"] == "complete"
    assert len(ollama.requests) == 2


def test_ollama_error_inside_the_stream_keeps_the_partial_text(api_client, conversation, ollama):
    ollama.enqueue(Behaviour(error_after=2, error="out of memory"))

    reply = assert_failed(send(api_client, conversation), "provider_error", "out of memory")

    assert reply["content"] == "The sky"


def test_ollama_connection_cut_mid_stream(api_client, conversation, ollama):
    ollama.enqueue(Behaviour(drop_after=3))

    reply = assert_failed(send(api_client, conversation), "stream_interrupted", "broke off")

    assert reply["content"] == "The sky is"


def test_ollama_stream_without_terminator_is_not_half_an_answer(api_client, conversation, ollama):
    ollama.enqueue(Behaviour(omit_terminator=True))

    assert_failed(send(api_client, conversation), "stream_interrupted")


def test_groq_without_a_key(api_client, groq_conversation, groq):
    assert_failed(send(api_client, groq_conversation), "api_key_missing", "/api/keys/")
    assert groq.requests == []


def test_groq_operator_key_is_the_fallback(api_client, groq_conversation, groq, settings):
    settings.GROQ_API_KEY = TEST_KEY

    response = send(api_client, groq_conversation)

    assert response.json()["assistant_message"]["status"] == "complete"


def test_groq_bad_key(api_client, groq_conversation, groq, groq_key):
    groq.valid_keys = {"gsk_" + "x" * 52}

    reply = assert_failed(send(api_client, groq_conversation), "auth_error", "API key")

    assert TEST_KEY not in str(reply)


def test_groq_rate_limited_says_when_to_retry(api_client, groq_conversation, groq, groq_key):
    groq.enqueue(Behaviour(status=429, headers={"retry-after": "120"}))

    reply = assert_failed(send(api_client, groq_conversation), "rate_limited", "try again in 2 min")

    assert reply["error"]["retry_after"] == 120
    assert len(groq.requests) == 1  # beyond the cap: not waited for silently


def test_groq_unknown_model(api_client, user, groq, groq_key):
    conversation = services.conversation_create(owner=user, provider="groq", model="gpt-9")
    groq.enqueue(Behaviour(status=404))

    assert_failed(send(api_client, conversation), "model_not_found", "gpt-9")


def test_groq_capacity_exceeded(api_client, groq_conversation, groq, groq_key):
    groq.enqueue(Behaviour(status=498))

    assert_failed(send(api_client, groq_conversation), "provider_unavailable")


def test_groq_error_event_inside_the_stream(api_client, groq_conversation, groq, groq_key):
    groq.enqueue(Behaviour(error_after=1, error="model crashed"))

    reply = assert_failed(send(api_client, groq_conversation), "provider_error", "model crashed")

    assert reply["content"] == "Fast"


def test_failed_replies_stay_out_of_the_next_context(api_client, conversation, ollama):
    ollama.enqueue(Behaviour(status=400, error="bad"))
    send(api_client, conversation, "first")
    send(api_client, conversation, "second")

    sent = ollama.requests[-1].json()
    assert [m["content"] for m in sent["messages"]] == ["Be brief.", "first", "second"]


# --- regenerate ----------------------------------------------------------------------------


def test_regenerate_replaces_the_last_reply(api_client, conversation, ollama):
    ollama.enqueue(Behaviour(status=400, error="bad"))
    first = send(api_client, conversation, "question").json()
    ollama.enqueue(Behaviour(reply="A better answer."))

    response = api_client.post(url(conversation, "regenerate/"))

    assert response.status_code == 201, response.data
    body = response.json()
    assert body["user_message"]["id"] == first["user_message"]["id"]
    assert body["assistant_message"]["content"] == "A better answer."
    assert body["assistant_message"]["status"] == "complete"
    assert not Message.objects.filter(pk=first["assistant_message"]["id"]).exists()
    assert list(conversation.messages.values_list("role", "content")) == [
        ("user", "question"),
        ("assistant", "A better answer."),
    ]
    assert [m["content"] for m in ollama.requests[-1].json()["messages"]] == [
        "Be brief.",
        "question",
    ]


def test_regenerate_with_no_message_is_400(api_client, conversation, ollama):
    response = api_client.post(url(conversation, "regenerate/"))

    assert response.status_code == 400
    assert response.json()["code"] == "nothing_to_regenerate"


def test_regenerate_while_a_reply_streams_is_400(api_client, user, conversation, ollama):
    services.message_begin(user=user, conversation_id=conversation.pk, content="hi")

    response = api_client.post(url(conversation, "regenerate/"))

    assert response.status_code == 400
    assert response.json()["code"] == "conversation_busy"


# --- the message list ----------------------------------------------------------------------


def fill(conversation, count):
    """``count`` stored messages, alternating user / assistant, contents m0..m{count-1}."""
    rows = [
        Message(
            conversation=conversation,
            position=i + 1,
            role="user" if i % 2 == 0 else "assistant",
            content=f"m{i}",
        )
        for i in range(count)
    ]
    Message.objects.bulk_create(rows)
    return rows


def contents(response):
    return [m["content"] for m in response.json()["results"]]


def test_messages_newest_page_oldest_first_then_older_by_cursor(api_client, conversation):
    fill(conversation, 7)

    first = api_client.get(url(conversation, "messages/"), {"page_size": 3})
    assert first.status_code == 200
    assert contents(first) == ["m4", "m5", "m6"]
    assert first.json()["count"] == 7
    assert first.json()["next"] is None

    second = api_client.get(first.json()["previous"])
    assert contents(second) == ["m1", "m2", "m3"]

    third = api_client.get(second.json()["previous"])
    assert contents(third) == ["m0"]
    assert third.json()["previous"] is None

    newer = api_client.get(third.json()["next"])
    assert contents(newer) == ["m1", "m2", "m3"]


def test_messages_default_page_size_setting(api_client, conversation, settings):
    settings.CHAT_MESSAGES_PAGE_SIZE = 2
    fill(conversation, 5)
    assert contents(api_client.get(url(conversation, "messages/"))) == ["m3", "m4"]


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": 0},
        {"page_size": 201},
        {"page_size": "many"},
        {"cursor": "nope"},
    ],
)
def test_messages_bad_query_is_400(api_client, conversation, params):
    fill(conversation, 2)
    response = api_client.get(url(conversation, "messages/"), params)
    assert response.status_code == 400


def test_a_bad_cursor_is_a_400_on_its_field(api_client, conversation):
    fill(conversation, 2)
    response = api_client.get(url(conversation, "messages/"), {"cursor": "////"})
    assert response.status_code == 400
    assert "cursor" in response.json()["errors"]


def test_paging_keeps_the_page_size_and_sees_messages_added_meanwhile(api_client, conversation):
    fill(conversation, 5)
    first = api_client.get(url(conversation, "messages/"), {"page_size": 2}).json()
    assert [m["content"] for m in first["results"]] == ["m3", "m4"]
    Message.objects.create(conversation=conversation, position=6, role="user", content="m5")

    older = api_client.get(first["previous"]).json()
    assert [m["content"] for m in older["results"]] == ["m1", "m2"]
    assert older["count"] == 6
    newer = api_client.get(older["next"]).json()
    assert [m["content"] for m in newer["results"]] == ["m3", "m4"]
    newest = api_client.get(newer["next"]).json()
    assert [m["content"] for m in newest["results"]] == ["m5"]


@pytest.mark.parametrize("page_size", [5, 50])
def test_message_list_query_count_is_constant(
    api_client, conversation, django_assert_num_queries, page_size
):
    fill(conversation, 120)
    # token auth, the conversation, the count, the page
    with django_assert_num_queries(4):
        first = api_client.get(url(conversation, "messages/"), {"page_size": page_size})
    # the cursor carries its position: no query to find it
    with django_assert_num_queries(4):
        response = api_client.get(first.json()["previous"])
    assert len(response.json()["results"]) == page_size


def test_the_provider_gets_the_trimmed_history(api_client, conversation, ollama, settings):
    ollama.enqueue(Behaviour(reply="r1 " * 10), Behaviour(reply="r2"), Behaviour(reply="r3"))
    send(api_client, conversation, "q1")
    send(api_client, conversation, "q2")
    # "Be brief." (9) + "q3" (2) + "r2" (2) + "q2" (2) = 15 fits; "r1 r1 …" (30) does not.
    settings.CHAT_CONTEXT_MAX_CHARS = 20

    send(api_client, conversation, "q3")

    assert ollama.requests[-1].json()["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "r2"},
        {"role": "user", "content": "q3"},
    ]
