"""Every error under /api/ is JSON ``{"detail", "code"}`` in every mode, DEBUG on too, whoever
answers it (DRF, or Django before DRF is reached); pages elsewhere keep Django's templates."""

import pytest
from django.urls import path

pytestmark = pytest.mark.django_db

DEBUG_MODES = [pytest.param(False, id="debug-off"), pytest.param(True, id="debug-on")]


@pytest.fixture(params=DEBUG_MODES)
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def assert_json_error(response, status, code):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["code"] == code, body
    return body


def test_unknown_api_url_is_a_json_404(api_client, debug):
    response = api_client.get("/api/no-such-thing/")

    assert assert_json_error(response, 404, "not_found") == {
        "detail": "Not found.",
        "code": "not_found",
    }


def test_unknown_page_outside_the_api_is_html(client, debug):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_disallowed_host_is_a_json_400(api_client, debug):
    response = api_client.get("/api/graphs/", HTTP_HOST="evil.example")

    assert_json_error(response, 400, "disallowed_host")


def test_a_disallowed_host_outside_the_api_is_not_json(client, settings):
    response = client.get("/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/form-data; boundary=x", "text/plain"]
)
def test_a_body_over_the_limit_is_a_json_413(api_client, settings, debug, content_type):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'

    response = api_client.post("/api/graphs/", body, content_type=content_type)

    assert assert_json_error(response, 413, "too_large") == {
        "detail": "request body too large (limit 1 MB)",
        "code": "too_large",
    }


def test_a_body_at_the_limit_is_read(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = '{"name": "' + "x" * 100 + '"}'

    response = api_client.post("/api/graphs/", body, content_type="application/json")

    assert response.status_code == 201


def test_too_many_fields_is_a_json_400_with_a_code(api_client, settings, debug):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"f{i}=x" for i in range(20))

    response = api_client.post(
        "/api/graphs/", body, content_type="application/x-www-form-urlencoded"
    )

    assert_json_error(response, 400, "too_many_fields")


def test_malformed_json_has_a_code(api_client, debug):
    response = api_client.post("/api/graphs/", '{"name": ', content_type="application/json")

    assert_json_error(response, 400, "parse_error")


@pytest.mark.parametrize("body", [b"", b"--x--\r\n"])
def test_an_empty_multipart_post_is_a_json_400(api_client, debug, body):
    response = api_client.post("/api/graphs/", body, content_type="multipart/form-data; boundary=x")

    assert_json_error(response, 400, "invalid")


def _fault(request):
    raise RuntimeError("a bug")


urlpatterns = [path("api/fault/", _fault)]


@pytest.mark.urls(__name__)
def test_a_server_fault_is_a_json_500_without_a_traceback(client, debug):
    client.raise_request_exception = False

    response = client.get("/api/fault/")

    assert assert_json_error(response, 500, "server_error") == {
        "detail": "Server error.",
        "code": "server_error",
    }


def test_a_method_not_allowed_keeps_allow(api_client, debug):
    response = api_client.put("/api/graphs/", {}, format="json")

    assert_json_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_a_request_without_credentials_is_told_how_to_authenticate(anon_client, debug):
    response = anon_client.get("/api/graphs/")

    assert_json_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_field_errors_carry_detail_code_and_the_fields(api_client):
    response = api_client.post("/api/keys/", {"provider": "nope"}, format="json")

    body = assert_json_error(response, 400, "invalid")
    assert set(body["errors"]) == {"provider", "secret"}


def test_the_browsable_api_still_renders_its_errors_as_html(api_client):
    response = api_client.get("/api/graphs/not-a-graph/", HTTP_ACCEPT="text/html")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
