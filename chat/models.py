from django.conf import settings
from django.db import models

from canvas.core.models import BaseModel

TITLE_MAX_LENGTH = 200
MODEL_MAX_LENGTH = 200


class ChatProvider(models.TextChoices):
    OLLAMA = "ollama", "Ollama"
    GROQ = "groq", "Groq"


class Conversation(BaseModel):
    """A chat with one model of one provider. ``updated_at`` moves with every message.

    The model is not checked when a conversation is created: Ollama may pull it later, and the
    first reply says so in words if it is still missing.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=TITLE_MAX_LENGTH, blank=True, default="")
    provider = models.CharField(max_length=20, choices=ChatProvider.choices)
    model = models.CharField(max_length=MODEL_MAX_LENGTH)
    system_prompt = models.TextField(blank=True, default="")
    # Generation options passed to the provider (temperature, top_p, max_tokens, seed).
    options = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-updated_at", "id"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="chat_conv_owner_updated")]

    def __str__(self) -> str:
        return self.title or f"{self.provider}/{self.model}"


class Message(BaseModel):
    """One turn. ``position`` orders a conversation's messages (gapless per conversation is not
    promised: a regenerated reply takes a new position); it is the cursor of the message list.
    """

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete", "Complete"
        STREAMING = "streaming", "Streaming"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    position = models.PositiveIntegerField()
    role = models.CharField(max_length=20, choices=Role.choices)
    content = models.TextField(blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.COMPLETE)
    # {"code", "message", ...}: why a reply failed, in words a user understands.
    error = models.JSONField(null=True, blank=True)
    # The provider's usage record of a reply (token counts, finish reason, metrics).
    usage = models.JSONField(null=True, blank=True)
    # The model that answered (a conversation's model may change between replies).
    model = models.CharField(max_length=MODEL_MAX_LENGTH, blank=True, default="")
    # Set by chat.cancel from any process; the streaming thread's process polls it.
    cancel_requested = models.BooleanField(default=False)
    # While streaming: written every WORKFLOW_HEARTBEAT_INTERVAL by the process streaming it;
    # older than WORKFLOW_STALE_AFTER means that process died (the reply ends ``interrupted``).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["conversation", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "position"], name="chat_message_unique_position"
            ),
        ]
        indexes = [
            # The streaming replies of a conversation (cancel, regenerate guard).
            models.Index(
                fields=["conversation", "status"],
                name="chat_message_streaming",
                condition=models.Q(status="streaming"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.position}: {self.content[:40]}"
