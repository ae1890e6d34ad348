from django.conf import settings
from django.db import models
from django.db.models import Q

from canvas.core.models import BaseModel
from integrations.encryption import EncryptedTextField


class Provider(models.TextChoices):
    OLLAMA = "ollama", "Ollama"
    GROQ = "groq", "Groq"


class ApiKey(BaseModel):
    """A user's secret for a provider, encrypted at rest.

    ``secret`` is the plaintext in Python and AES + HMAC ciphertext in the database (see
    ``integrations.encryption``); ``hint`` is the only part of it ever shown. At most one key
    per owner and provider is active: the one the clients use. Writes go through
    ``integrations.keys`` services, which keep that rule and derive the hint.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    provider = models.CharField(max_length=20, choices=Provider.choices)
    name = models.CharField(max_length=200)
    secret = EncryptedTextField()
    hint = models.CharField(max_length=40, blank=True)
    is_active = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["provider", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "provider", "name"],
                name="integrations_apikey_unique_name",
                violation_error_message="You already have a key with this name for this provider.",
            ),
            models.UniqueConstraint(
                fields=["owner", "provider"],
                condition=Q(is_active=True),
                name="integrations_apikey_one_active",
                violation_error_message="Only one key per provider can be active.",
            ),
        ]

    def __str__(self) -> str:
        # Shown by the admin (lists, delete confirmations, history): never the secret.
        return f"{self.name} ({self.provider}, {self.hint})"
