#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        # Load the settings now: a missing variable is one line, not a traceback.
        settings.INSTALLED_APPS  # noqa: B018
    except ImproperlyConfigured as exc:
        sys.stderr.write(
            f"manage.py: {exc}. For development, run `make run` once (it writes .env) or "
            "export DEBUG=1; for production see docs/operations.md.\n"
        )
        sys.exit(1)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
