"""Chat fixtures: the fake providers wired into the settings, conversations, a Groq key."""

import pytest

from chat import services
from integrations.keys import api_key_create
from tests.fakes.fixtures import fake_groq, fake_ollama  # noqa: F401 - fixtures
from tests.fakes.groq import TEST_KEY
from tests.live import free_port


@pytest.fixture
def ollama(fake_ollama, settings):  # noqa: F811
    """The fake Ollama as OLLAMA_BASE_URL; retries quick so the 5xx paths stay fast."""
    settings.OLLAMA_BASE_URL = fake_ollama.url
    settings.HTTP_MAX_RETRIES = 1
    return fake_ollama


@pytest.fixture
def groq(fake_groq, settings):  # noqa: F811
    settings.GROQ_BASE_URL = fake_groq.base_url
    settings.GROQ_API_KEY = ""
    settings.HTTP_MAX_RETRIES = 1
    return fake_groq


@pytest.fixture
def ollama_down(settings):
    """OLLAMA_BASE_URL pointing at a loopback port nobody listens on."""
    settings.OLLAMA_BASE_URL = f"http://127.0.0.1:{free_port()}"
    settings.HTTP_MAX_RETRIES = 0
    return settings.OLLAMA_BASE_URL


@pytest.fixture
def groq_key(user):
    return api_key_create(owner=user, provider="groq", secret=TEST_KEY, name="main")


@pytest.fixture
def conversation(user):
    return services.conversation_create(
        owner=user, provider="ollama", model="llama3.2", system_prompt="Be brief."
    )


@pytest.fixture
def groq_conversation(user):
    return services.conversation_create(
        owner=user, provider="groq", model="llama-3.3-70b-versatile"
    )


@pytest.fixture
def other_conversation(other_user):
    return services.conversation_create(owner=other_user, provider="ollama", model="llama3.2")
