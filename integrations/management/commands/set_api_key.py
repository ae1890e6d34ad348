"""Store (or replace) a user's provider key from the shell, without the secret touching argv."""

import getpass
import sys

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.views.decorators.debug import sensitive_variables

from integrations import keys
from integrations.models import ApiKey, Provider


class Command(BaseCommand):
    help = (
        "Store a provider key for a user and make it the active one. The secret is read from "
        'standard input when piped (`printf %s "$KEY" | manage.py set_api_key ...`), else '
        "from a prompt that does not echo; never from the command line, where `ps` and shell "
        "history would keep it. A key of the same name is rotated in place."
    )

    # ``stdin`` can be passed to call_command (tests), as createsuperuser allows.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username of the key's owner")
        parser.add_argument("--provider", required=True, choices=Provider.values)
        parser.add_argument("--name", default=keys.DEFAULT_KEY_NAME, help="the key's name")

    @sensitive_variables()
    def handle(self, *args, user, provider, name, **options):
        stdin = options.get("stdin") or sys.stdin
        try:
            owner = get_user_model().objects.get_by_natural_key(user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {user!r}.") from None

        if stdin.isatty():
            secret = getpass.getpass(f"{provider} key for {user} (not echoed): ")
        else:
            secret = stdin.read()

        existing = ApiKey.objects.filter(owner=owner, provider=provider, name=name).first()
        try:
            if existing is None:
                api_key = keys.api_key_create(
                    owner=owner, provider=provider, name=name, secret=secret
                )
                verb = "Stored"
            else:
                api_key = keys.api_key_update(api_key=existing, secret=secret, is_active=True)
                verb = "Rotated"
        except ValidationError as exc:
            raise CommandError(
                " ".join(m for messages in exc.message_dict.values() for m in messages)
            ) from None
        self.stdout.write(
            f"{verb} {provider} key {api_key.name!r} for {user} ({api_key.hint}); it is active."
        )
