from tests.fakes.fixtures import fake_ollama  # noqa: F401 - fixture for this package
