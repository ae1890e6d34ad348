"""The provider registry, /api/providers/ and check_providers against the fakes."""

import io
import socket

import pytest
from django.core.management import CommandError, call_command

from integrations import keys, providers
from integrations.errors import AuthError
from integrations.groq import GroqClient
from integrations.ollama import OllamaClient
from tests.fakes import fixtures
from tests.fakes.groq import TEST_KEY

fake_ollama = fixtures.fake_ollama
fake_groq = fixtures.fake_groq

pytestmark = pytest.mark.django_db


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def both_up(settings, fake_ollama, fake_groq):
    settings.OLLAMA_BASE_URL = fake_ollama.url
    settings.GROQ_BASE_URL = fake_groq.base_url
    settings.GROQ_API_KEY = ""
    return fake_ollama, fake_groq


@pytest.fixture
def groq_key(user):
    return keys.api_key_create(owner=user, provider="groq", name="main", secret=TEST_KEY)


def by_name(data):
    return {row["name"]: row for row in data}


# --- registry ---------------------------------------------------------------------------------


def test_registry_names_and_clients(both_up, user, groq_key):
    assert providers.provider_names() == ["ollama", "groq"]
    assert isinstance(providers.provider_client(name="ollama"), OllamaClient)
    client = providers.provider_client(name="groq", user=user)
    assert isinstance(client, GroqClient)
    assert client.chat(model="llama-3.1-8b-instant", messages=[{"role": "user", "content": "x"}])


def test_groq_client_without_a_key_says_how_to_add_one(both_up, user):
    with pytest.raises(keys.ApiKeyMissing, match="POST /api/keys/"):
        providers.provider_client(name="groq", user=user)


def test_status_when_everything_is_up(both_up, user, groq_key):
    statuses = {s.name: s for s in providers.providers_status(user=user)}
    assert statuses["ollama"].as_dict() == {
        "name": "ollama",
        "reachable": True,
        "version": "0.6.5",
        "key_set": None,
        "error": None,
    }
    assert statuses["groq"].as_dict() == {
        "name": "groq",
        "reachable": True,
        "version": None,
        "key_set": True,
        "error": None,
    }


def test_status_with_a_rejected_key(both_up, user):
    keys.api_key_create(owner=user, provider="groq", name="old", secret="gsk_" + "x" * 52)
    status = providers.provider_status(name="groq", user=user)
    assert status.reachable is True
    assert status.key_set is True
    assert "rejected the key" in status.error
    assert "gsk_xxxx" not in status.error


def test_status_without_a_key_still_probes_reachability(both_up, user):
    status = providers.provider_status(name="groq", user=user)
    assert (status.reachable, status.key_set) == (True, False)
    assert "GROQ_API_KEY" in status.error
    assert "Authorization" not in both_up[1].requests[-1].headers


def test_operator_key_is_the_fallback(both_up, settings, user):
    settings.GROQ_API_KEY = TEST_KEY
    status = providers.provider_status(name="groq", user=user)
    assert (status.key_set, status.error) == (True, None)


def test_status_when_down_names_the_cause_and_fix(settings, user):
    settings.OLLAMA_BASE_URL = dead_url()
    settings.GROQ_BASE_URL = dead_url() + "/openai/v1"
    statuses = {s.name: s for s in providers.providers_status(user=user)}
    assert statuses["ollama"].reachable is False
    assert "OLLAMA_BASE_URL" in statuses["ollama"].error
    assert "host.docker.internal" in statuses["ollama"].error
    assert statuses["groq"].reachable is False
    assert "GROQ_BASE_URL" in statuses["groq"].error


def test_models(both_up, user, groq_key):
    ollama_models = providers.provider_models(name="ollama", user=user)
    assert [m["name"] for m in ollama_models] == ["llama3.2:latest", "all-minilm:latest"]
    groq_models = providers.provider_models(name="groq", user=user)
    assert {m["id"]: m["chat"] for m in groq_models}["whisper-large-v3"] is False


# --- API --------------------------------------------------------------------------------------


def test_providers_endpoint(both_up, api_client, groq_key):
    response = api_client.get("/api/providers/")
    assert response.status_code == 200
    rows = by_name(response.json())
    assert rows["ollama"]["reachable"] is True
    assert rows["ollama"]["version"] == "0.6.5"
    assert rows["groq"]["key_set"] is True


def test_providers_endpoint_reports_another_users_key_state_only_for_them(
    both_up, api_client, other_api_client, groq_key
):
    assert by_name(other_api_client.get("/api/providers/").json())["groq"]["key_set"] is False
    assert by_name(api_client.get("/api/providers/").json())["groq"]["key_set"] is True


def test_providers_endpoint_needs_authentication(anon_client):
    assert anon_client.get("/api/providers/").status_code in (401, 403)
    assert anon_client.get("/api/providers/ollama/models/").status_code in (401, 403)


def test_models_endpoint(both_up, api_client, groq_key):
    response = api_client.get("/api/providers/ollama/models/")
    assert response.status_code == 200
    assert response.json()[0]["name"] == "llama3.2:latest"
    response = api_client.get("/api/providers/groq/models/")
    assert response.status_code == 200
    assert {m["id"] for m in response.json() if m["chat"]} == {
        "llama-3.3-70b-versatile",
        "llama-3.1-8b-instant",
    }
    # Groq's list was fetched with the requesting user's key.
    assert both_up[1].requests[-1].headers["Authorization"] == f"Bearer {TEST_KEY}"


def test_models_endpoint_errors(both_up, api_client, settings):
    assert api_client.get("/api/providers/nope/models/").status_code == 404
    response = api_client.get("/api/providers/groq/models/")
    assert response.status_code == 400
    assert response.json()["code"] == "api_key_missing"
    settings.OLLAMA_BASE_URL = dead_url()
    response = api_client.get("/api/providers/ollama/models/")
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "unavailable"
    assert "OLLAMA_BASE_URL" in body["detail"]


def test_models_endpoint_with_a_rejected_key(both_up, api_client, user):
    keys.api_key_create(owner=user, provider="groq", name="bad", secret="gsk_" + "y" * 52)
    response = api_client.get("/api/providers/groq/models/")
    assert response.status_code == 502
    assert response.json()["code"] == AuthError.code
    assert "yyyy" not in response.content.decode()


# --- command ----------------------------------------------------------------------------------


def test_check_providers_all_up(both_up, user, groq_key):
    out = io.StringIO()
    call_command("check_providers", "--user", user.username, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"ollama: ok at {both_up[0].url}, version 0.6.5"
    assert lines[1] == f"groq: ok at {both_up[1].base_url}, key set"


def test_check_providers_without_key_warns_but_passes(both_up):
    out = io.StringIO()
    call_command("check_providers", stdout=out)
    assert "groq: ok" in out.getvalue()
    assert "no key" in out.getvalue()


def test_check_providers_fails_when_one_is_down(both_up, settings):
    settings.OLLAMA_BASE_URL = dead_url()
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("check_providers", stdout=out)
    assert info.value.returncode == 1
    line = out.getvalue().splitlines()[0]
    assert line.startswith("ollama: DOWN - cannot reach")
    assert "ollama serve" in line


def test_check_providers_one_provider_and_unknown_user(both_up):
    out = io.StringIO()
    call_command("check_providers", "--provider", "ollama", stdout=out)
    assert out.getvalue().count("\n") == 1
    with pytest.raises(CommandError, match="no user named"):
        call_command("check_providers", "--user", "ghost")
