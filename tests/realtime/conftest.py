import pytest

from tests.fakes.fixtures import fake_ollama, ollama_fixture  # noqa: F401 - fixture for this package
from tests.live import daphne, server_env_for_test_db

module_ollama = ollama_fixture("module_ollama", scope="module")


@pytest.fixture(scope="module")
def served(django_db_setup, module_ollama):
    """A real Daphne on the test database whose LLM nodes call the module's fake Ollama.

    With REDIS_URL set (CI's second pass) its channel layers are Redis, as in production.
    """
    env = server_env_for_test_db(OLLAMA_BASE_URL=module_ollama.url, WORKFLOW_EXECUTOR="inline")
    with daphne(env) as base_url:
        yield base_url
