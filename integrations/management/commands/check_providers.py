"""``manage.py check_providers``: one line per provider; exits 1 when one is down."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from integrations import providers


class Command(BaseCommand):
    help = (
        "Check that each LLM provider answers: one line per provider with its version and key, "
        "or the cause and the fix. Exits with status 1 when a provider is down."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--user",
            help="check this user's stored keys (default: the operator's GROQ_API_KEY only)",
        )
        parser.add_argument(
            "--provider", choices=providers.provider_names(), action="append", dest="names"
        )

    def handle(self, *args, user=None, names=None, **options):
        owner = None
        if user:
            try:
                owner = get_user_model().objects.get_by_natural_key(user)
            except get_user_model().DoesNotExist:
                raise CommandError(f"no user named {user!r}") from None
        down = 0
        for status in providers.providers_status(user=owner, names=names):
            base_url = providers.PROVIDERS[status.name].base_url()
            if not status.reachable:
                down += 1
                self.stdout.write(self.style.ERROR(f"{status.name}: DOWN - {status.error}"))
                continue
            parts = [f"{status.name}: ok at {base_url}"]
            if status.version:
                parts.append(f"version {status.version}")
            if status.key_set is not None:
                parts.append("key set" if status.key_set else "no key")
            line = ", ".join(parts)
            if status.error:
                self.stdout.write(self.style.WARNING(f"{line} - {status.error}"))
            else:
                self.stdout.write(self.style.SUCCESS(line))
        if down:
            raise CommandError(f"{down} provider(s) down", returncode=1)
