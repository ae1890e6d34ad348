"""Fixtures shared by the whole suite, and the rules for real services.

PostgreSQL and Redis are used when ``DATABASE_URL`` / ``REDIS_URL`` point at them. Tests that
need Redis are marked ``redis`` and skip when ``REDIS_URL`` is unset; under ``CI=true`` a
configured service that cannot be reached stops the run instead of skipping anything.
"""

import os
import socket
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config):
    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL", "")
    problems = []
    if redis_url and not _reachable(redis_url, 6379):
        problems.append(f"REDIS_URL={redis_url} is not reachable")
    if database_url.startswith("postgres") and not _reachable(database_url, 5432):
        problems.append(f"DATABASE_URL={database_url} is not reachable")
    if problems:
        pytest.exit("; ".join(problems), returncode=3)
    if redis_url:
        # This run's own channel names in Redis, shared with the servers and workers it
        # starts (they inherit the environment): two runs on one Redis, or a worker left over
        # from another run, never take each other's messages.
        prefix = f"test-{os.getpid()}"
        os.environ["CHANNEL_LAYER_PREFIX"] = prefix
        for layer in settings.CHANNEL_LAYERS.values():
            layer.setdefault("CONFIG", {})["prefix"] = prefix
    # Cheap password hashes in this process (tests/hashers.py); servers and commands it starts
    # keep the real settings, and still read these hashes.
    settings.PASSWORD_HASHERS = [
        "tests.hashers.OneIterationPBKDF2PasswordHasher",
        *(h for h in settings.PASSWORD_HASHERS if not h.endswith(".PBKDF2PasswordHasher")),
    ]
    # The cache (throttle counters) likewise: this run's own keys, which _own_cache_keys
    # deletes after each test (never a FLUSHDB of the shared Redis).
    cache_prefix = f"test-{os.getpid()}"
    os.environ["CACHE_KEY_PREFIX"] = cache_prefix
    settings.CACHES["default"]["KEY_PREFIX"] = cache_prefix


def pytest_collection_modifyitems(config, items):
    skip_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL")
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    on_pg = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    for item in items:
        if "redis" in item.keywords and not os.environ.get("REDIS_URL"):
            item.add_marker(skip_redis)
        if "postgres" in item.keywords and not on_pg:
            item.add_marker(skip_pg)


@pytest.fixture(autouse=True)
def _no_cached_replays():
    """Every test starts with an empty replay cache (canvas/core/replays.py):
    a test's rows are rolled back, its cached logs must go with them."""
    yield
    from workflows.realtime import replay_cache

    replay_cache.clear()


@pytest.fixture(autouse=True)
def _own_cache_keys():
    """Every test starts with empty throttle counters: this run's cache keys are deleted after
    each test (by prefix under Redis, shared with other runs; the whole local cache otherwise)."""
    yield
    from django.core.cache import cache

    if settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*"))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="alice-pass-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="bob-pass-123")


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def api_client(user):
    """An API client authenticated with ``user``'s DRF token."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def other_api_client(other_user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=other_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client
