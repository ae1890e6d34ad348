"""Pytest fixtures that start the fake providers on loopback; import them into a test module."""

import pytest

from .groq import FakeGroq
from .ollama import FakeOllama


@pytest.fixture
def fake_ollama():
    with FakeOllama() as server:
        yield server


@pytest.fixture
def fake_groq():
    with FakeGroq() as server:
        yield server
