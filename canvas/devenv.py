"""Write a development ``.env`` for this checkout (``make run`` calls it when there is none).

``python -m canvas.devenv [PATH]`` writes ``DEBUG=1`` and a newly generated ``SECRET_KEY`` and
``CRYPTOGRAPHY_KEY``, so that ``.venv/bin/python manage.py <command>`` works as typed, with the
same settings as the server ``make run`` starts. An existing file is left alone. When a
database already exists beside it (a checkout that ran before ``.env`` existed), its stored
keys were encrypted with the development ``CRYPTOGRAPHY_KEY``: that value is kept so they stay
readable.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# The value canvas/settings.py uses in DEBUG when none is set.
DEV_CRYPTOGRAPHY_KEY = "dev-only-cryptography-key"  # noqa: S105


def dotenv_text(*, keep_dev_cryptography_key: bool) -> str:
    cryptography_key = (
        DEV_CRYPTOGRAPHY_KEY if keep_dev_cryptography_key else secrets.token_urlsafe(32)
    )
    return "\n".join(
        [
            "# Development settings for this checkout, written by `make run` (canvas/devenv.py).",
            "# Production sets these in the environment instead: see docs/operations.md.",
            "DEBUG=1",
            f"SECRET_KEY={secrets.token_urlsafe(50)}",
            "# Encrypts the stored provider keys: keep it while the database lives.",
            f"CRYPTOGRAPHY_KEY={cryptography_key}",
            "",
        ]
    )


def write_dotenv(path: Path, *, database: Path) -> bool:
    """Write ``path`` unless it exists; True when written."""
    if path.exists():
        return False
    text = dotenv_text(keep_dev_cryptography_key=database.exists())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return True


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else BASE_DIR / ".env"
    if write_dotenv(path, database=path.parent / "db.sqlite3"):
        print(f"Wrote {path}: development settings with a new SECRET_KEY and CRYPTOGRAPHY_KEY.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
