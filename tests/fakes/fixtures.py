"""Pytest fixtures that start the fake providers on loopback; import them into a test module.

``fake_ollama`` and ``fake_groq`` live for one test. A package or module whose live server
(Daphne, a worker) is configured with one fake Ollama for its whole life makes a wider one in
its conftest or module: ``module_ollama = ollama_fixture("module_ollama", scope="module")``.
"""

import pytest

from .groq import FakeGroq
from .ollama import FakeOllama


def ollama_fixture(name: str, *, scope: str):
    """A fixture called ``name`` serving one ``FakeOllama`` for ``scope`` (its tests share
    the server, its recorded requests and its script)."""

    @pytest.fixture(scope=scope, name=name)
    def server():
        with FakeOllama() as fake:
            yield fake

    return server


fake_ollama = ollama_fixture("fake_ollama", scope="function")


@pytest.fixture
def fake_groq():
    with FakeGroq() as server:
        yield server
