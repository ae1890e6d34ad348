"""set_api_key, rotate_encryption_key and the start-up key check, in-process and as processes."""

import io
import os
import sqlite3
import subprocess
import sys

import pytest
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test import override_settings

import canvas.settings as settings_module
from integrations import checks as key_checks
from integrations import keys
from integrations.encryption import DecryptionError
from integrations.models import ApiKey
from tests.integrations.test_keys import GROQ_SECRET, OTHER_SECRET
from tests.live import BASE_DIR, daphne, run_manage

# The passphrase the test settings use (settings.CRYPTOGRAPHY_KEY holds its stretched form).
CONFIGURED_KEY = settings_module.CRYPTOGRAPHY_KEY
NEW_KEY = "the-new-cryptography-key"


def raw_columns() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, secret FROM integrations_apikey")
        return {name: bytes(secret) for name, secret in cursor.fetchall()}


class TtyInput(io.StringIO):
    def isatty(self):
        return True


# --- set_api_key ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_set_api_key_reads_a_piped_secret_and_prints_only_the_hint(user):
    out = io.StringIO()

    call_command(
        "set_api_key",
        user="alice",
        provider="groq",
        stdin=io.StringIO(GROQ_SECRET + "\n"),
        stdout=out,
    )

    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET
    assert "gsk_…3f9a" in out.getvalue()
    assert GROQ_SECRET not in out.getvalue()
    assert ApiKey.objects.get().name == keys.DEFAULT_KEY_NAME


@pytest.mark.django_db
def test_set_api_key_prompts_without_echo_on_a_terminal(user, monkeypatch):
    prompts = []

    def fake_getpass(prompt):
        prompts.append(prompt)
        return OTHER_SECRET

    monkeypatch.setattr("getpass.getpass", fake_getpass)

    call_command(
        "set_api_key",
        user="alice",
        provider="ollama",
        name="proxy",
        stdin=TtyInput(),
        stdout=io.StringIO(),
    )

    assert len(prompts) == 1
    assert keys.key_resolve(user=user, provider="ollama") == OTHER_SECRET


@pytest.mark.django_db
def test_set_api_key_with_an_existing_name_rotates_that_key(user):
    first = keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)
    keys.api_key_create(owner=user, provider="groq", name="other", secret=GROQ_SECRET)
    out = io.StringIO()

    call_command(
        "set_api_key",
        user="alice",
        provider="groq",
        name="main",
        stdin=io.StringIO(OTHER_SECRET),
        stdout=out,
    )

    assert ApiKey.objects.count() == 2
    first.refresh_from_db()
    assert first.secret == OTHER_SECRET
    assert first.is_active
    assert keys.key_resolve(user=user, provider="groq") == OTHER_SECRET
    assert "Rotated" in out.getvalue()


@pytest.mark.django_db
def test_set_api_key_refuses_an_unknown_user_and_an_empty_secret(user):
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("set_api_key", user="nobody", provider="groq", stdin=io.StringIO(GROQ_SECRET))
    with pytest.raises(CommandError, match="may not be blank"):
        call_command("set_api_key", user="alice", provider="groq", stdin=io.StringIO("\n"))

    assert not ApiKey.objects.exists()


def test_set_api_key_takes_no_secret_on_the_command_line():
    with pytest.raises(CommandError, match="unrecognized arguments"):
        call_command("set_api_key", "--user", "alice", "--provider", "groq", "--secret", "x")


# --- rotate_encryption_key ---------------------------------------------------------------------


@pytest.mark.django_db
def test_rotation_round_trip(user, other_user):
    keys.api_key_create(owner=user, provider="groq", name="a", secret=GROQ_SECRET)
    keys.api_key_create(owner=user, provider="ollama", name="b", secret=OTHER_SECRET)
    keys.api_key_create(owner=other_user, provider="groq", name="c", secret=OTHER_SECRET)
    before = raw_columns()
    out = io.StringIO()

    call_command("rotate_encryption_key", old_key=CONFIGURED_KEY, new_key=NEW_KEY, stdout=out)

    assert "Re-encrypted 3 API key(s)" in out.getvalue()
    after = raw_columns()
    assert all(after[name] != before[name] for name in before)
    with override_settings(CRYPTOGRAPHY_KEY=NEW_KEY):
        assert {k.name: k.secret for k in ApiKey.objects.all()} == {
            "a": GROQ_SECRET,
            "b": OTHER_SECRET,
            "c": OTHER_SECRET,
        }
        assert key_checks.check_encryption_key(databases=["default"]) == []
    with pytest.raises(DecryptionError):
        list(ApiKey.objects.all())

    # And back: the stretched key in settings and the passphrase are the same key.
    call_command("rotate_encryption_key", old_key=NEW_KEY, new_key=CONFIGURED_KEY, stdout=out)
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


@pytest.mark.django_db
def test_rotation_with_a_wrong_old_key_changes_nothing(user):
    keys.api_key_create(owner=user, provider="groq", name="a", secret=GROQ_SECRET)
    keys.api_key_create(owner=user, provider="ollama", name="b", secret=OTHER_SECRET)
    before = raw_columns()

    with pytest.raises(CommandError, match="--old-key cannot decrypt") as exc:
        call_command("rotate_encryption_key", old_key="wrong", new_key=NEW_KEY)

    assert "\n" not in str(exc.value)
    assert raw_columns() == before


@pytest.mark.django_db
def test_rotation_is_all_or_nothing_when_one_row_does_not_decrypt(user):
    keys.api_key_create(owner=user, provider="groq", name="a", secret=GROQ_SECRET)
    with override_settings(CRYPTOGRAPHY_KEY="some-other-key"):
        keys.api_key_create(owner=user, provider="ollama", name="b", secret=OTHER_SECRET)
    before = raw_columns()

    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("rotate_encryption_key", old_key=CONFIGURED_KEY, new_key=NEW_KEY)

    assert raw_columns() == before


@pytest.mark.django_db
def test_rotating_twice_says_the_rows_already_use_the_new_key(user):
    keys.api_key_create(owner=user, provider="groq", name="a", secret=GROQ_SECRET)
    call_command(
        "rotate_encryption_key", old_key=CONFIGURED_KEY, new_key=NEW_KEY, stdout=io.StringIO()
    )

    with pytest.raises(CommandError, match="already encrypted with --new-key"):
        call_command("rotate_encryption_key", old_key=CONFIGURED_KEY, new_key=NEW_KEY)


@pytest.mark.parametrize(("old", "new"), [("same", "same"), ("", NEW_KEY), (CONFIGURED_KEY, "")])
def test_rotation_refuses_empty_or_identical_keys(old, new):
    with pytest.raises(CommandError):
        call_command("rotate_encryption_key", old_key=old, new_key=new)


@pytest.mark.django_db
def test_rotation_of_an_empty_table_succeeds():
    out = io.StringIO()
    call_command("rotate_encryption_key", old_key=CONFIGURED_KEY, new_key=NEW_KEY, stdout=out)
    assert "Re-encrypted 0 API key(s)" in out.getvalue()


# --- The system check and the start-up verification --------------------------------------------


def test_the_check_is_registered_as_a_database_check():
    registered = checks.registry.registry.get_checks()
    assert key_checks.check_encryption_key in registered
    assert "database" in key_checks.check_encryption_key.tags


def test_without_databases_the_check_touches_none():
    # ``manage.py check`` without --database: no query (this test has no database access).
    assert key_checks.check_encryption_key(databases=None) == []


@pytest.mark.django_db
def test_the_check_passes_with_no_keys_and_with_readable_keys(user):
    assert key_checks.check_encryption_key(databases=["default"]) == []
    keys.api_key_create(owner=user, provider="groq", name="a", secret=GROQ_SECRET)
    assert key_checks.check_encryption_key(databases=["default"]) == []
    key_checks.verify_encryption_key()


@pytest.mark.django_db
def test_the_check_fails_when_the_configured_key_cannot_decrypt(user):
    keys.api_key_create(owner=user, provider="groq", name="a", secret=GROQ_SECRET)

    with override_settings(CRYPTOGRAPHY_KEY="not-the-key"):
        errors = checks.run_checks(databases=["default"], tags=[checks.Tags.database])
        with pytest.raises(ImproperlyConfigured, match="rotate_encryption_key"):
            key_checks.verify_encryption_key()

    assert [e.id for e in errors if e.id.startswith("integrations.")] == ["integrations.E001"]


@pytest.mark.django_db
def test_the_check_reads_every_row_in_one_query(user, django_assert_max_num_queries):
    for index in range(3):
        keys.api_key_create(owner=user, provider="groq", name=f"k{index}", secret=GROQ_SECRET)

    # Table introspection and one select of every row.
    with django_assert_max_num_queries(2):
        assert key_checks.stored_secrets_readable()


@pytest.mark.django_db
def test_the_check_names_every_row_it_cannot_decrypt_and_only_those(user, other_user):
    # Given keys written by a process that still ran on the old key after a rotation…
    keys.api_key_create(owner=user, provider="groq", name="good", secret=GROQ_SECRET)
    with override_settings(CRYPTOGRAPHY_KEY="the-old-key"):
        stale = keys.api_key_create(owner=user, provider="groq", name="stale", secret=GROQ_SECRET)
        other = keys.api_key_create(
            owner=other_user, provider="ollama", name="o", secret=GROQ_SECRET
        )
    keys.api_key_create(owner=other_user, provider="groq", name="fine", secret=GROQ_SECRET)

    # …the check fails and names exactly those rows.
    errors = key_checks.check_encryption_key(databases=["default"])
    assert [e.id for e in errors] == ["integrations.E001"]
    message = errors[0].msg
    assert "cannot decrypt 2 API key(s)" in message
    assert f"{stale.pk} (alice, groq key 'stale')" in message
    assert f"{other.pk} (bob, ollama key 'o')" in message
    assert "'good'" not in message
    assert "'fine'" not in message
    assert GROQ_SECRET not in message
    with pytest.raises(ImproperlyConfigured, match=str(stale.pk)):
        key_checks.verify_encryption_key()


def test_verification_lets_the_process_start_when_the_database_cannot_be_asked(monkeypatch, caplog):
    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(key_checks, "unreadable_secrets", unreachable)

    key_checks.verify_encryption_key()

    assert "Could not verify CRYPTOGRAPHY_KEY" in caplog.text


# --- As an operator runs them: real processes on a fresh database ------------------------------


def manage(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_manage(*args, env=env, stdin=stdin)


@pytest.fixture(scope="module")
def operator_env(tmp_path_factory):
    """A fresh SQLite database, migrated, with user alice and her Groq key."""
    db_path = tmp_path_factory.mktemp("keys") / "db.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "SECRET_KEY"}},
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "CRYPTOGRAPHY_KEY": "operator-key-one",
    }
    # migrate runs the database checks on a database without tables: they must pass.
    migrated = manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    created = manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; User.objects.create_user('alice')",
    )
    assert created.returncode == 0, created.stderr
    stored = manage(
        env, "set_api_key", "--user", "alice", "--provider", "groq", stdin=GROQ_SECRET + "\n"
    )
    assert stored.returncode == 0, stored.stderr
    assert "gsk_…3f9a" in stored.stdout
    assert GROQ_SECRET not in stored.stdout + stored.stderr
    return env, db_path


def stored_ciphertext(db_path) -> bytes:
    with sqlite3.connect(db_path) as db:
        return bytes(db.execute("SELECT secret FROM integrations_apikey").fetchone()[0])


def test_process_raw_column_holds_no_plaintext(operator_env):
    _env, db_path = operator_env
    assert GROQ_SECRET.encode() not in stored_ciphertext(db_path)


def test_process_check_database_fails_with_a_wrong_key(operator_env):
    env, _ = operator_env

    good = manage(env, "check", "--database", "default")
    bad = manage(
        {**env, "CRYPTOGRAPHY_KEY": "operator-key-wrong"}, "check", "--database", "default"
    )

    assert good.returncode == 0, good.stderr
    assert bad.returncode != 0
    assert "integrations.E001" in bad.stderr
    assert GROQ_SECRET not in bad.stdout + bad.stderr


def test_process_a_new_secret_key_alone_changes_nothing(operator_env):
    env, _ = operator_env
    result = manage({**env, "SECRET_KEY": "rotated-" + "s" * 50}, "check", "--database", "default")
    assert result.returncode == 0, result.stderr


def test_process_daphne_refuses_to_start_with_a_wrong_key(operator_env):
    env, _ = operator_env
    process = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "daphne", "-p", "0", "canvas.asgi:application"],
        cwd=BASE_DIR,
        env={**env, "CRYPTOGRAPHY_KEY": "operator-key-wrong"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert process.returncode != 0
    assert "CRYPTOGRAPHY_KEY cannot decrypt 1 API key(s)" in process.stderr
    assert GROQ_SECRET not in process.stderr


def test_process_a_worker_refuses_to_start_with_a_wrong_key(operator_env):
    env, _ = operator_env
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "celery", "-A", "canvas", "worker"],
        cwd=BASE_DIR,
        env={
            **env,
            "CRYPTOGRAPHY_KEY": "operator-key-wrong",
            "WORKFLOW_EXECUTOR": "celery",
            # Nothing listens there: the check runs before the worker connects to its broker.
            "CELERY_BROKER_URL": "redis://127.0.0.1:9/0",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "CRYPTOGRAPHY_KEY cannot decrypt 1 API key(s)" in result.stderr
    assert GROQ_SECRET not in result.stderr


def test_process_daphne_serves_with_the_right_key(operator_env):
    env, _ = operator_env
    import requests

    with daphne(env) as url:
        assert requests.get(f"{url}/api/keys/", timeout=10).status_code in {401, 403}


def test_process_rotation_round_trip_and_one_line_failure(operator_env):
    env, db_path = operator_env
    before = stored_ciphertext(db_path)

    failed = manage(
        env, "rotate_encryption_key", "--old-key", "wrong", "--new-key", "operator-key-two"
    )

    assert failed.returncode != 0
    assert failed.stderr.strip().count("\n") == 0
    assert failed.stderr.startswith("CommandError: --old-key cannot decrypt")
    assert stored_ciphertext(db_path) == before

    rotated = manage(
        env,
        "rotate_encryption_key",
        "--old-key",
        "operator-key-one",
        "--new-key",
        "operator-key-two",
    )
    assert rotated.returncode == 0, rotated.stderr
    assert stored_ciphertext(db_path) != before

    new_env = {**env, "CRYPTOGRAPHY_KEY": "operator-key-two"}
    assert manage(new_env, "check", "--database", "default").returncode == 0
    assert manage(env, "check", "--database", "default").returncode != 0
    read = manage(
        new_env,
        "shell",
        "-c",
        "from integrations.models import ApiKey; "
        f"print(ApiKey.objects.get().secret == {GROQ_SECRET!r})",
    )
    assert read.stdout.strip().endswith("True"), read.stderr

    # Put it back for the other tests of this module.
    back = manage(
        env,
        "rotate_encryption_key",
        "--old-key",
        "operator-key-two",
        "--new-key",
        "operator-key-one",
    )
    assert back.returncode == 0, back.stderr


def test_the_settings_key_is_stretched_by_the_library():
    # A reminder of the trap the encryption module works around.
    assert isinstance(settings.CRYPTOGRAPHY_KEY, bytes)
    assert len(settings.CRYPTOGRAPHY_KEY) == 32
