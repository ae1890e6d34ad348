"""/api/keys/: secrets go in, only hints come out; other users' keys answer 404."""

import json
import uuid

import pytest
from django.test import override_settings

from integrations import keys
from integrations.models import ApiKey
from tests.integrations.test_keys import GROQ_SECRET, OTHER_SECRET

pytestmark = pytest.mark.django_db

URL = "/api/keys/"


def detail_url(key_id) -> str:
    return f"{URL}{key_id}/"


def assert_no_plaintext(response):
    body = response.content.decode()
    assert GROQ_SECRET not in body
    assert OTHER_SECRET not in body
    assert '"secret"' not in body or response.status_code == 400


def stored(user, *, name="main", provider="groq", secret=GROQ_SECRET, **kwargs) -> ApiKey:
    return keys.api_key_create(owner=user, provider=provider, name=name, secret=secret, **kwargs)


# --- Create -----------------------------------------------------------------------------------


def test_post_stores_the_key_and_answers_with_the_hint_only(api_client, user):
    response = api_client.post(URL, {"provider": "groq", "name": "main", "secret": GROQ_SECRET})

    assert response.status_code == 201, response.content
    assert_no_plaintext(response)
    data = response.json()
    assert set(data) == {
        "id",
        "provider",
        "name",
        "hint",
        "is_active",
        "created_at",
        "updated_at",
        "last_used_at",
    }
    assert data["hint"] == "gsk_…3f9a"
    assert data["is_active"] is True
    assert data["last_used_at"] is None
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


def test_post_without_a_name_uses_the_default_name(api_client):
    response = api_client.post(URL, {"provider": "ollama", "secret": GROQ_SECRET})

    assert response.status_code == 201
    assert response.json()["name"] == keys.DEFAULT_KEY_NAME


def test_post_a_second_active_key_deactivates_the_first(api_client, user):
    first = stored(user, name="first")

    response = api_client.post(URL, {"provider": "groq", "name": "second", "secret": OTHER_SECRET})

    assert response.status_code == 201
    first.refresh_from_db()
    assert not first.is_active
    assert keys.key_resolve(user=user, provider="groq") == OTHER_SECRET


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"provider": "openai", "name": "k", "secret": GROQ_SECRET}, "provider"),
        ({"name": "k", "secret": GROQ_SECRET}, "provider"),
        ({"provider": "groq", "name": "k"}, "secret"),
        ({"provider": "groq", "name": "k", "secret": ""}, "secret"),
        ({"provider": "groq", "name": "k", "secret": "   \n"}, "secret"),
        ({"provider": "groq", "name": "k", "secret": "gsk_a\nX-Evil: 1" + "b" * 20}, "secret"),
        ({"provider": "groq", "name": "k", "secret": "s" * 4097}, "secret"),
        # An HTTP header carries Latin-1 only: such a secret could never be sent.
        ({"provider": "groq", "name": "k", "secret": "gsk_" + "ключ" * 8}, "secret"),
        ({"provider": "groq", "name": "k", "secret": {"nested": GROQ_SECRET}}, "secret"),
        ({"provider": "groq", "name": "", "secret": GROQ_SECRET}, "name"),
        ({"provider": "groq", "name": "   ", "secret": GROQ_SECRET}, "name"),
        ({"provider": "groq", "name": "n" * 201, "secret": GROQ_SECRET}, "name"),
        (
            {"provider": "groq", "name": "k", "secret": GROQ_SECRET, "is_active": "maybe"},
            "is_active",
        ),
    ],
)
def test_bad_input_is_400_with_the_field_named_and_the_secret_not_echoed(
    api_client, payload, field
):
    response = api_client.post(URL, payload)

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert GROQ_SECRET not in response.content.decode()
    assert "X-Evil" not in response.content.decode()
    assert not ApiKey.objects.exists()


def test_a_duplicate_name_is_400_on_name(api_client, user):
    stored(user, name="main")

    response = api_client.post(URL, {"provider": "groq", "name": "main", "secret": OTHER_SECRET})

    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    assert ApiKey.objects.count() == 1


def test_the_same_name_for_another_provider_is_fine(api_client, user):
    stored(user, name="main", provider="groq")

    response = api_client.post(URL, {"provider": "ollama", "name": "main", "secret": OTHER_SECRET})

    assert response.status_code == 201


def test_a_malformed_json_body_is_400(api_client):
    response = api_client.generic("POST", URL, "{not json", content_type="application/json")

    assert response.status_code == 400


def test_a_form_encoded_post_works_too(api_client, user):
    # The browsable API posts forms.
    response = api_client.post(
        URL,
        {"provider": "groq", "name": "form", "secret": GROQ_SECRET},
        format="multipart",
    )

    assert response.status_code == 201
    assert_no_plaintext(response)
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


# --- Read -------------------------------------------------------------------------------------


def test_list_shows_hints_of_the_users_own_keys_only(api_client, user, other_user):
    stored(user, name="a")
    stored(user, name="b", provider="ollama", secret=OTHER_SECRET)
    stored(other_user, name="theirs")

    response = api_client.get(URL)

    assert response.status_code == 200
    assert_no_plaintext(response)
    data = response.json()
    assert data["count"] == 2
    assert {item["name"] for item in data["results"]} == {"a", "b"}
    assert {item["hint"] for item in data["results"]} == {"gsk_…3f9a", "gsk_…77aa"}


def test_list_query_count_does_not_grow_with_keys(api_client, user, django_assert_num_queries):
    for index in range(5):
        stored(user, name=f"k{index}", is_active=False)

    # Token auth (1), count (1), page (1).
    with django_assert_num_queries(3):
        response = api_client.get(URL)

    assert response.json()["count"] == 5


def test_list_reads_no_secret_so_a_wrong_key_cannot_break_it(api_client, user):
    stored(user)

    with override_settings(CRYPTOGRAPHY_KEY="not-the-key"):
        response = api_client.get(URL)

    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_retrieve_shows_the_hint(api_client, user):
    api_key = stored(user)

    response = api_client.get(detail_url(api_key.pk))

    assert response.status_code == 200
    assert_no_plaintext(response)
    assert response.json()["hint"] == "gsk_…3f9a"


def test_browsable_api_pages_offer_a_password_field_and_show_no_secret(api_client, user):
    api_key = stored(user)

    detail = api_client.get(detail_url(api_key.pk), HTTP_ACCEPT="text/html")
    listing = api_client.get(URL, HTTP_ACCEPT="text/html")

    assert detail.status_code == 200
    assert listing.status_code == 200
    assert GROQ_SECRET not in detail.content.decode()
    assert GROQ_SECRET not in listing.content.decode()
    assert 'type="password"' in listing.content.decode()  # the POST form's secret field


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_users_key_is_404(other_api_client, user, method):
    api_key = stored(user)

    response = getattr(other_api_client, method)(detail_url(api_key.pk), {"name": "mine now"})

    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.name == "main"


@pytest.mark.parametrize("key_id", ["not-a-uuid", "123", str(uuid.uuid4())])
def test_a_missing_or_malformed_id_is_404(api_client, key_id):
    assert api_client.get(detail_url(key_id)).status_code == 404
    assert api_client.patch(detail_url(key_id), {"name": "x"}).status_code == 404
    assert api_client.delete(detail_url(key_id)).status_code == 404


def test_anonymous_requests_are_refused(anon_client, user):
    api_key = stored(user)

    assert anon_client.get(URL).status_code in {401, 403}
    assert anon_client.get(detail_url(api_key.pk)).status_code in {401, 403}
    response = anon_client.post(URL, {"provider": "groq", "secret": GROQ_SECRET})
    assert response.status_code in {401, 403}
    assert ApiKey.objects.count() == 1


def test_put_is_not_offered(api_client, user):
    api_key = stored(user)

    response = api_client.put(
        detail_url(api_key.pk), {"provider": "groq", "name": "x", "secret": OTHER_SECRET}
    )

    assert response.status_code == 405


# --- Update and delete ------------------------------------------------------------------------


def test_patch_secret_rotates_it_in_place(api_client, user):
    api_key = stored(user)

    response = api_client.patch(detail_url(api_key.pk), {"secret": OTHER_SECRET})

    assert response.status_code == 200
    assert_no_plaintext(response)
    assert response.json()["hint"] == "gsk_…77aa"
    assert response.json()["id"] == str(api_key.pk)
    assert keys.key_resolve(user=user, provider="groq") == OTHER_SECRET


def test_patch_renames_without_touching_the_secret(api_client, user):
    api_key = stored(user)

    response = api_client.patch(detail_url(api_key.pk), {"name": "renamed"})

    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    assert response.json()["hint"] == "gsk_…3f9a"
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


def test_patch_activate_deactivates_the_other_key(api_client, user):
    first = stored(user, name="first")
    second = stored(user, name="second", secret=OTHER_SECRET)

    response = api_client.patch(detail_url(first.pk), {"is_active": True})

    assert response.status_code == 200
    assert response.json()["is_active"] is True
    second.refresh_from_db()
    assert not second.is_active
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


def test_patch_deactivate_leaves_the_provider_without_a_key(api_client, user):
    api_key = stored(user)

    with override_settings(GROQ_API_KEY=""):
        response = api_client.patch(detail_url(api_key.pk), {"is_active": False})
        assert not keys.key_is_set(user=user, provider="groq")

    assert response.status_code == 200


def test_patch_cannot_move_a_key_to_another_provider(api_client, user):
    api_key = stored(user)

    response = api_client.patch(detail_url(api_key.pk), {"provider": "ollama"})

    assert response.status_code == 400
    assert "provider" in response.json()["errors"]
    api_key.refresh_from_db()
    assert api_key.provider == "groq"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"secret": ""}, "secret"),
        ({"secret": "a\tb" + "c" * 30}, "secret"),
        ({"secret": "gsk_\u2603" + "c" * 30}, "secret"),
        ({"name": "n" * 201}, "name"),
        ({"name": ""}, "name"),
        ({"is_active": "perhaps"}, "is_active"),
    ],
)
def test_patch_bad_input_is_400(api_client, user, payload, field):
    api_key = stored(user)

    response = api_client.patch(detail_url(api_key.pk), payload)

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


def test_patch_onto_a_taken_name_is_400(api_client, user):
    stored(user, name="taken")
    api_key = stored(user, name="mine", secret=OTHER_SECRET)

    response = api_client.patch(detail_url(api_key.pk), {"name": "taken"})

    assert response.status_code == 400
    assert "name" in response.json()["errors"]


def test_delete_removes_the_key(api_client, user):
    api_key = stored(user)

    response = api_client.delete(detail_url(api_key.pk))

    assert response.status_code == 204
    assert not ApiKey.objects.exists()


def test_a_missing_key_error_reaches_the_client_as_400_with_its_code(user):
    # What a view that resolves a key (chat, providers) answers when there is none.
    from rest_framework.test import APIRequestFactory

    from canvas.core.exceptions import exception_handler

    with override_settings(GROQ_API_KEY=""):
        try:
            keys.key_resolve(user=user, provider="groq")
        except keys.ApiKeyMissing as exc:
            response = exception_handler(exc, {"request": APIRequestFactory().get("/")})

    assert response.status_code == 400
    assert response.data["code"] == "api_key_missing"
    assert "/api/keys/" in response.data["detail"]


# --- Schema -----------------------------------------------------------------------------------


def test_the_openapi_schema_marks_the_secret_write_only(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert "/api/keys/" in schema["paths"]
    assert "/api/keys/{id}/" in schema["paths"]
    components = schema["components"]["schemas"]
    assert "secret" not in components["ApiKeyOutput"]["properties"]
    assert "secret" in components["ApiKeyCreateRequest"]["properties"]
    assert components["ApiKeyCreateRequest"]["properties"]["secret"]["writeOnly"] is True


@pytest.fixture
def unreadable_groq_key(user):
    """A key a process still on the old CRYPTOGRAPHY_KEY wrote after a rotation."""
    with override_settings(CRYPTOGRAPHY_KEY="the-old-key"):
        return stored(user, name="stale")


def test_a_key_that_cannot_be_decrypted_is_a_clear_error_for_its_owner(user, unreadable_groq_key):
    with pytest.raises(keys.ApiKeyUnreadable) as info:
        keys.key_resolve(user=user, provider="groq")

    assert info.value.code == "api_key_unreadable"
    assert "'stale'" in info.value.message
    assert f"/api/keys/{unreadable_groq_key.pk}/" in info.value.message


def test_an_undecryptable_key_answers_400_on_the_models_endpoint_not_500(
    api_client, unreadable_groq_key
):
    response = api_client.get("/api/providers/groq/models/")

    assert response.status_code == 400
    assert response.json()["code"] == "api_key_unreadable"


def test_the_provider_status_names_an_undecryptable_key(api_client, unreadable_groq_key, settings):
    settings.GROQ_BASE_URL = "http://127.0.0.1:9"
    settings.OLLAMA_BASE_URL = "http://127.0.0.1:9"

    response = api_client.get("/api/providers/")

    assert response.status_code == 200
    groq = {p["name"]: p for p in response.json()}["groq"]
    assert groq["key_set"] is True
    assert "cannot be used" in groq["error"]


def test_a_non_latin1_secret_stored_before_validation_is_a_400_not_a_500(api_client, user):
    # Written straight to the table, as the API allowed before secrets had to be Latin-1.
    ApiKey.objects.create(owner=user, provider="groq", name="old", secret="gsk_ключ" * 6)

    response = api_client.get("/api/providers/groq/models/")

    assert response.status_code == 400
    assert response.json()["code"] == "api_key_unreadable"
    assert "ключ" not in response.content.decode()


def test_a_chat_reply_with_an_undecryptable_key_fails_with_the_cause(
    api_client, user, unreadable_groq_key
):
    from chat.services import conversation_create

    conversation = conversation_create(owner=user, provider="groq", model="llama-3.1-8b")
    response = api_client.post(
        f"/api/conversations/{conversation.pk}/messages/", {"content": "hi"}, format="json"
    )

    assert response.status_code == 201
    reply = response.json()["assistant_message"]
    assert reply["status"] == "failed"
    assert reply["error"]["code"] == "api_key_unreadable"
