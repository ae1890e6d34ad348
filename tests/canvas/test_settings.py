"""The settings module: embedded defaults, production requirements, check --deploy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

# The checkout's own .env (written by `make run`) must not fill in what a test leaves unset.
NO_ENV_FILE = str(BASE_DIR / "tests" / "no-such.env")

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "x7Qm2-pL9vR4tW8yZ1cF6hJ3kN5bD0gS-eA7uI2oP4lK9jH6fG3dS1aQ8wE5rT0yU",
    "ALLOWED_HOSTS": "canvas.example.com",
    "CRYPTOGRAPHY_KEY": "production-cryptography-key",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def run_python(code: str, **env_overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    env.update(env_overrides)
    env.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")
    env.setdefault("ENV_FILE", NO_ENV_FILE)
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def read_settings(*names, **env) -> list[str]:
    code = "import django; django.setup(); from django.conf import settings as s; " + "; ".join(
        f"print(repr({name}))" for name in names
    )
    result = run_python(code, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_embedded_defaults_are_sqlite_and_in_memory_layer():
    engine, layer, events_layer, options = read_settings(
        "s.DATABASES['default']['ENGINE']",
        "s.CHANNEL_LAYERS['default']['BACKEND']",
        "s.CHANNEL_LAYERS[s.EVENTS_CHANNEL_LAYER]['BACKEND']",
        "s.DATABASES['default']['OPTIONS']",
        DEBUG="1",
    )
    assert engine == "'canvas.sqlite'"  # Django's SQLite backend, connections reused
    assert layer == "'channels.layers.InMemoryChannelLayer'"
    # The sockets' layer copies a group message once for the whole group.
    assert events_layer == "'canvas.core.layers.SharedInMemoryChannelLayer'"
    assert "journal_mode=WAL" in options
    assert "'transaction_mode': 'IMMEDIATE'" in options


def test_production_urls_select_postgres_pool_and_redis_layer():
    engine, conn_max_age, pool, layer, events_layer = read_settings(
        "s.DATABASES['default']['ENGINE']",
        "s.DATABASES['default']['CONN_MAX_AGE']",
        "bool(s.DATABASES['default']['OPTIONS']['pool'])",
        "s.CHANNEL_LAYERS['default']['BACKEND']",
        "s.CHANNEL_LAYERS[s.EVENTS_CHANNEL_LAYER]['BACKEND']",
        **PRODUCTION_ENV,
    )
    assert engine == "'django.db.backends.postgresql'"
    assert conn_max_age == "0"
    assert pool == "True"
    assert layer == "'channels_redis.core.RedisChannelLayer'"
    assert events_layer == "'canvas.core.layers.SharedRedisPubSubChannelLayer'"


@pytest.mark.parametrize(("value", "expected"), [(None, "5"), ("20", "20"), ("", "None")])
def test_postgres_statements_are_prepared_unless_turned_off(value, expected):
    # The server parses and plans a statement run again once per connection (psycopg's
    # threshold); empty turns it off, for a transaction-pooling proxy.
    env = dict(PRODUCTION_ENV)
    if value is not None:
        env["DATABASE_PREPARE_THRESHOLD"] = value
    (threshold,) = read_settings("s.DATABASES['default']['OPTIONS']['prepare_threshold']", **env)
    assert threshold == expected


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "CRYPTOGRAPHY_KEY"])
def test_secrets_are_required_outside_debug(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_python("import django; django.setup()", **env)
    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr


def test_check_deploy_is_clean_with_production_variables():
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env={
            **{k: v for k, v in os.environ.items() if k != "DEBUG"},
            **PRODUCTION_ENV,
            "ENV_FILE": NO_ENV_FILE,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_security_switches_can_be_turned_off_for_plain_http_rigs():
    redirect, session_secure = read_settings(
        "s.SECURE_SSL_REDIRECT",
        "s.SESSION_COOKIE_SECURE",
        **PRODUCTION_ENV,
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
    )
    assert redirect == "False"
    assert session_secure == "False"


def test_channel_layer_prefix_keeps_deployments_on_one_redis_apart():
    default, events = read_settings(
        "s.CHANNEL_LAYERS['default']['CONFIG']['prefix']",
        "s.CHANNEL_LAYERS['events']['CONFIG']['prefix']",
        **PRODUCTION_ENV,
        CHANNEL_LAYER_PREFIX="canvas-staging",
    )
    assert default == events == "'canvas-staging'"
