"""Re-encrypt every stored secret from one CRYPTOGRAPHY_KEY to another, in one transaction."""

from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.db.models.functions import Cast
from django.views.decorators.debug import sensitive_variables

from integrations.encryption import DecryptionError, decrypt_text, encrypt_text, secret_box
from integrations.models import ApiKey


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API key from --old-key to --new-key (the CRYPTOGRAPHY_KEY "
        "values) in one transaction; nothing changes unless every row decrypts with --old-key. "
        "Then set CRYPTOGRAPHY_KEY to the new key and restart. SECRET_KEY is not involved."
    )
    # Runs precisely when the configured key is wrong or about to change.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--old-key", required=True, help="the key the secrets are stored with")
        parser.add_argument("--new-key", required=True, help="the key to store them with")

    @sensitive_variables()
    def handle(self, *args, old_key, new_key, **options):
        if not old_key or not new_key:
            raise CommandError("--old-key and --new-key may not be empty.")
        if old_key == new_key:
            raise CommandError("--old-key and --new-key are the same: nothing to do.")
        old_box, new_box = secret_box(old_key), secret_box(new_key)

        with transaction.atomic():
            # The raw column (the ciphertext), not the field, which would decrypt with the
            # configured key.
            rows = list(
                ApiKey.objects.select_for_update()
                .order_by("pk")
                .annotate(ciphertext=Cast("secret", models.BinaryField()))
                .values_list("pk", "ciphertext")
            )
            rewritten = []
            for pk, ciphertext in rows:
                try:
                    plaintext = decrypt_text(bytes(ciphertext), box=old_box)
                except DecryptionError:
                    raise CommandError(
                        self._cannot_decrypt(pk, bytes(ciphertext), new_box)
                    ) from None
                rewritten.append((pk, encrypt_text(plaintext, box=new_box)))
            for pk, ciphertext in rewritten:
                ApiKey.objects.filter(pk=pk).update(
                    secret=models.Value(ciphertext, output_field=models.BinaryField())
                )

        self.stdout.write(
            f"Re-encrypted {len(rewritten)} API key(s). Set CRYPTOGRAPHY_KEY to the new key and "
            "restart every process (web and workers)."
        )

    def _cannot_decrypt(self, pk, ciphertext: bytes, new_box) -> str:
        try:
            decrypt_text(ciphertext, box=new_box)
        except DecryptionError:
            return f"--old-key cannot decrypt API key {pk}; nothing was changed."
        return (
            f"API key {pk} is already encrypted with --new-key (an earlier rotation?); "
            "nothing was changed."
        )
