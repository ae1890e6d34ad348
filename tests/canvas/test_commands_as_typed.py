"""Commands work as typed: `make run` leaves a development .env behind, so `manage.py <command>`
works in that checkout; with no settings at all a command says which variable is missing."""

import os
import stat
import subprocess
from pathlib import Path

from canvas import devenv
from tests.live import BASE_DIR, run_manage

SETTINGS_VARIABLES = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CRYPTOGRAPHY_KEY", "ENV_FILE")


def manage(*args, env_file: Path) -> subprocess.CompletedProcess:
    # The environment of a fresh shell: none of the settings variables exported.
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["ENV_FILE"] = str(env_file)
    return run_manage(*args, env=env)


def read_env(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_the_development_env_file_has_generated_secrets(tmp_path):
    first, second = tmp_path / "a" / ".env", tmp_path / "b" / ".env"
    first.parent.mkdir()
    second.parent.mkdir()

    assert devenv.write_dotenv(first, database=first.parent / "db.sqlite3")
    assert devenv.write_dotenv(second, database=second.parent / "db.sqlite3")

    a, b = read_env(first), read_env(second)
    assert a["DEBUG"] == "1"
    assert len(a["SECRET_KEY"]) >= 50
    assert a["SECRET_KEY"] != b["SECRET_KEY"]
    assert a["CRYPTOGRAPHY_KEY"] != b["CRYPTOGRAPHY_KEY"]
    assert devenv.DEV_CRYPTOGRAPHY_KEY not in (a["CRYPTOGRAPHY_KEY"], a["SECRET_KEY"])
    assert stat.S_IMODE(first.stat().st_mode) == 0o600


def test_an_existing_env_file_is_kept(tmp_path):
    path = tmp_path / ".env"
    path.write_text("DEBUG=0\n")

    assert not devenv.write_dotenv(path, database=tmp_path / "db.sqlite3")
    assert path.read_text() == "DEBUG=0\n"


def test_a_checkout_with_a_database_keeps_the_key_its_secrets_were_stored_with(tmp_path):
    (tmp_path / "db.sqlite3").write_bytes(b"")

    devenv.write_dotenv(tmp_path / ".env", database=tmp_path / "db.sqlite3")

    assert read_env(tmp_path / ".env")["CRYPTOGRAPHY_KEY"] == devenv.DEV_CRYPTOGRAPHY_KEY


def test_the_makefile_writes_it_before_running_anything():
    makefile = (BASE_DIR / "Makefile").read_text()
    assert "run: .env migrate" in makefile
    assert "python -m canvas.devenv .env" in makefile


def test_manage_py_works_as_typed_with_the_written_env_file(tmp_path):
    env_file = tmp_path / ".env"
    devenv.write_dotenv(env_file, database=tmp_path / "db.sqlite3")

    result = manage("check", env_file=env_file)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_without_any_settings_a_command_says_which_variable_is_missing(tmp_path):
    result = manage("check", env_file=tmp_path / "missing.env")

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET_KEY" in lines[0]
    assert "make run" in lines[0]
    assert "Traceback" not in result.stderr
