"""Throttles (DRF scoped throttles, counted in the cache) and login lockout (django-axes).

Each test sets the rates it needs; the suite's conftest empties the counters after every test,
so the default rates stay on everywhere else.
"""

import pytest
from rest_framework.test import APIClient

from canvas.core.throttle_rates import DEFAULT_RATES, parse_rates
from integrations.models import ApiKey
from tests.graphs.factories import node

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Many logins here: a cheap hasher keeps them quick (the counting is what is tested).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


TOKEN_URL = "/api/auth/token/"


@pytest.fixture
def rates(settings):
    def set_rates(text):
        settings.THROTTLE_RATES = parse_rates(text)

    return set_rates


def assert_throttled(response):
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["code"] == "throttled"
    assert "throttled" in body["detail"]
    assert int(response["Retry-After"]) > 0


def token_request(username, *, address="10.0.0.1", password="wrong", **extra):  # noqa: S107
    return APIClient().post(
        TOKEN_URL,
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=address,
        **extra,
    )


def test_the_defaults_are_the_documented_ones(settings):
    assert DEFAULT_RATES == "auth=10/min,start=600/min,chat=60/min,keys=60/min"
    assert parse_rates(DEFAULT_RATES) == {
        "auth": "10/min",
        "start": "600/min",
        "chat": "60/min",
        "keys": "60/min",
    }


def test_rates_override_defaults_turn_one_off_or_all_off():
    assert parse_rates("auth=3/hour,chat=off") == {
        "auth": "3/hour",
        "start": "600/min",
        "chat": None,
        "keys": "60/min",
    }
    assert parse_rates("") == dict.fromkeys(("auth", "start", "chat", "keys"))


@pytest.mark.parametrize("text", ["login=3/min", "auth=3", "auth=x/min", "auth=3/week"])
def test_a_bad_rate_is_named(text):
    with pytest.raises(ValueError, match="auth|login"):
        parse_rates(text)


def test_token_requests_are_throttled_per_client_address(rates, user):
    rates("auth=3/min")
    for i in range(3):
        assert token_request(f"guess{i}").status_code == 400

    assert_throttled(token_request("guess-next"))
    # The right password does not get through either, from that address.
    assert_throttled(token_request("alice", password="alice-pass-123"))
    # Another address is counted apart.
    assert token_request("alice", address="10.0.0.2", password="alice-pass-123").status_code == 200


def test_a_forged_forwarded_for_header_does_not_reset_the_count(rates):
    rates("auth=2/min")
    for i in range(2):
        token_request(f"u{i}", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")

    assert_throttled(token_request("u9", HTTP_X_FORWARDED_FOR="192.0.2.99"))


def test_token_requests_are_throttled_per_username_from_any_address(rates, user):
    rates("auth=3/min")
    for i in range(3):
        assert token_request("alice", address=f"10.0.1.{i}").status_code == 400

    assert_throttled(token_request("ALICE", address="10.0.1.99", password="alice-pass-123"))
    assert token_request("bob", address="10.0.1.98").status_code == 400


@pytest.fixture
def graph_id(api_client):
    document = {"name": "g", "nodes": [node("text", {"text": "hi"})], "edges": []}
    return api_client.post("/api/graphs/", document, format="json").json()["id"]


def test_run_starts_are_throttled_per_user(rates, api_client, other_api_client, graph_id):
    rates("start=2/min")
    url = f"/api/graphs/{graph_id}/executions/"
    for _ in range(2):
        assert api_client.post(url, {"inputs": {}}, format="json").status_code == 202

    assert_throttled(api_client.post(url, {"inputs": {}}, format="json"))
    # Reading is not a start; another user has their own count.
    assert api_client.get(url).status_code == 200
    assert other_api_client.post(url, {"inputs": {}}, format="json").status_code == 404


def test_chat_sends_are_throttled_per_user(rates, api_client, user, settings):
    from chat.services import conversation_create

    settings.OLLAMA_BASE_URL = "http://127.0.0.1:9"  # down: the reply fails fast, still a send
    rates("chat=2/min")
    conversation = conversation_create(owner=user, provider="ollama", model="m")
    url = f"/api/conversations/{conversation.pk}/messages/"
    for _ in range(2):
        assert api_client.post(url, {"content": "hi"}, format="json").status_code == 201

    assert_throttled(api_client.post(url, {"content": "hi"}, format="json"))
    assert_throttled(api_client.post(f"/api/conversations/{conversation.pk}/regenerate/"))
    assert api_client.get(url).status_code == 200


def test_key_writes_are_throttled_per_user(rates, api_client):
    rates("keys=2/min")
    created = api_client.post(
        "/api/keys/", {"provider": "groq", "secret": "gsk_" + "a" * 40}, format="json"
    )
    assert created.status_code == 201
    url = f"/api/keys/{created.json()['id']}/"
    assert api_client.patch(url, {"name": "main"}, format="json").status_code == 200

    assert_throttled(api_client.delete(url))
    assert ApiKey.objects.count() == 1
    assert api_client.get("/api/keys/").status_code == 200


def test_an_empty_setting_turns_throttling_off(rates, user):
    rates("")
    for i in range(12):
        assert token_request(f"user{i}").status_code == 400


@pytest.mark.redis
def test_counters_live_in_redis_when_it_is_configured(rates, settings):
    from django.core.cache import cache

    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    rates("auth=1/min")
    token_request("alice")

    keys = cache._cache.get_client().keys(f"{settings.CACHES['default']['KEY_PREFIX']}:*")
    assert any(b"throttle:auth:address" in key for key in keys)


# --- Login lockout (django-axes) ---------------------------------------------------------------


@pytest.fixture
def lockout(settings):
    settings.AXES_FAILURE_LIMIT = 3


@pytest.mark.parametrize("login_url", ["/api-auth/login/", "/admin/login/"])
def test_session_logins_lock_out_after_repeated_failures(
    client, lockout, login_url, django_user_model
):
    django_user_model.objects.create_user("carol", password="carol-pass-123", is_staff=True)
    for _ in range(2):
        response = client.post(login_url, {"username": "carol", "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    # The third failure locks the pair out; then the right password does not get in either.
    assert client.post(login_url, {"username": "carol", "password": "x"}).status_code == 429

    response = client.post(login_url, {"username": "carol", "password": "carol-pass-123"})

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert b"Too many failed login attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_a_success_before_the_limit_resets_the_count(client, lockout, user):
    for _ in range(2):
        client.post("/api-auth/login/", {"username": "alice", "password": "wrong"})
    assert client.post("/api-auth/login/", {"username": "alice", "password": "alice-pass-123"})[
        "Location"
    ]
    client.logout()
    for _ in range(2):
        client.post("/api-auth/login/", {"username": "alice", "password": "wrong"})

    response = client.post("/api-auth/login/", {"username": "alice", "password": "alice-pass-123"})
    assert response.status_code == 302


def test_the_lockout_also_covers_the_token_endpoint_as_json(lockout, rates, user):
    rates("auth=off")
    for _ in range(2):
        assert token_request("alice").status_code == 400
    assert_throttled(token_request("alice"))

    assert_throttled(token_request("alice", password="alice-pass-123"))
    assert token_request("alice", address="10.9.9.9", password="alice-pass-123").status_code == 200


def test_a_throttled_error_from_a_service_is_a_429_over_http():
    # The socket's refusal (ThrottledError) answers like DRF's own Throttled over HTTP.
    from canvas.core.exceptions import ThrottledError, exception_handler

    response = exception_handler(ThrottledError(wait=3.2), {})

    assert response.status_code == 429
    assert response.data["code"] == "throttled"
    assert "4 seconds" in response.data["detail"]
    assert response["Retry-After"] == "4"
