"""Answers Django gives before DRF is reached are JSON under /api/, pages elsewhere."""

import pytest

pytestmark = pytest.mark.django_db


def test_unknown_api_url_is_a_json_404(api_client):
    response = api_client.get("/api/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_unknown_page_outside_the_api_is_html(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_too_many_fields_is_a_json_400(api_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"f{i}=x" for i in range(20))

    response = api_client.post(
        "/api/graphs/", body, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"


def test_a_request_without_credentials_is_told_how_to_authenticate(anon_client):
    response = anon_client.get("/api/graphs/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
