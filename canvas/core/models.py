import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class BaseModel(models.Model):
    """UUID primary key and timestamps, shared by every model a client sees."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class IdempotencyKey(BaseModel):
    """One ``Idempotency-Key`` of one user (``canvas/core/idempotency.py``): in flight while
    ``status_code`` is null; ``resource_id`` names what the request created, written in the
    same transaction as it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of the method, the path and the body: the same key with another request is a 422.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    resource_id = models.UUIDField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="core_idempotency_owner_key")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code or 'in flight'})"
