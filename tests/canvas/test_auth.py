"""Authentication: DRF token endpoint, token and session auth, IsAuthenticated by default."""

import pytest

pytestmark = pytest.mark.django_db


def test_token_endpoint_returns_a_token_for_valid_credentials(anon_client, user):
    response = anon_client.post(
        "/api/auth/token/", {"username": "alice", "password": "alice-pass-123"}, format="json"
    )

    assert response.status_code == 200
    assert len(response.json()["token"]) == 40


def test_token_endpoint_rejects_bad_credentials_like_every_other_error(anon_client, user):
    response = anon_client.post(
        "/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Unable to log in with provided credentials.",
        "code": "invalid_credentials",
    }

    response = anon_client.post("/api/auth/token/", {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {"username", "password"}


def test_api_requires_authentication(anon_client):
    response = anon_client.get("/api/")
    assert response.status_code == 401


def test_token_authenticates_api_requests(api_client):
    response = api_client.get("/api/")
    assert response.status_code == 200
    assert response.json()["graphs"].endswith("/api/graphs/")


def test_staff_session_from_admin_login_opens_the_browsable_api(client, django_user_model):
    django_user_model.objects.create_user(
        username="carol", password="carol-pass-123", is_staff=True
    )

    response = client.post(
        "/admin/login/?next=/api/", {"username": "carol", "password": "carol-pass-123"}
    )
    assert response.status_code == 302

    page = client.get("/api/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b"Django REST framework" in page.content
    assert b"carol" in page.content


def test_any_user_can_sign_in_to_the_browsable_api(client, user):
    response = client.post(
        "/api-auth/login/?next=/api/", {"username": "alice", "password": "alice-pass-123"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/api/"

    page = client.get("/api/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b"alice" in page.content


def test_home_page_links_to_the_api_and_admin(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b'href="/api/docs/"' in response.content
    assert b'href="/admin/"' in response.content
