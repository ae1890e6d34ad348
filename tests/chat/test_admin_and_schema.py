"""The admin shows conversations with their messages inline; the schema documents the API."""

import pytest

from chat.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    return client


def test_admin_lists_conversations_and_shows_messages_inline(admin_client, conversation):
    Message.objects.create(
        conversation=conversation, position=1, role="user", content="inline hello"
    )
    Message.objects.create(
        conversation=conversation,
        position=2,
        role="assistant",
        status="failed",
        error={"code": "model_not_found", "message": "Run `ollama pull llama3.2`."},
    )

    listing = admin_client.get("/admin/chat/conversation/")
    assert listing.status_code == 200
    assert "llama3.2" in listing.content.decode()

    page = admin_client.get(f"/admin/chat/conversation/{conversation.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "inline hello" in html
    assert "model_not_found" in html


def test_schema_documents_the_chat_endpoints(api_client):
    response = api_client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/api/conversations/"]) >= {"get", "post"}
    assert set(paths["/api/conversations/{id}/"]) >= {"get", "put", "patch", "delete"}
    assert set(paths["/api/conversations/{id}/messages/"]) >= {"get", "post"}
    assert "post" in paths["/api/conversations/{id}/regenerate/"]
    parameters = {
        p["name"] for p in paths["/api/conversations/{id}/messages/"]["get"]["parameters"]
    }
    assert {"cursor", "page_size"} <= parameters
