"""Input and output shapes of the chat API. They translate; ``chat.services`` decides."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from canvas.core.fields import DetailLinkField, StrictCharField
from chat.models import MODEL_MAX_LENGTH, TITLE_MAX_LENGTH, ChatProvider, Conversation, Message


def message_as_dict(message: Message) -> dict[str, Any]:
    """A message as the API, ``chat.done`` frames and the command show it."""
    return {
        "id": str(message.pk),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "error": message.error,
        "usage": message.usage,
        "model": message.model,
        "created_at": serializers.DateTimeField().to_representation(message.created_at),
    }


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["id", "role", "content", "status", "error", "usage", "model", "created_at"]
        read_only_fields = fields


class ConversationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = [
            "id",
            "title",
            "provider",
            "model",
            "system_prompt",
            "options",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ConversationListItemSerializer(ConversationSerializer):
    """A conversation in the list: its fields and `url`, the link to it."""

    url = DetailLinkField(view_name="conversation-detail")

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "url"]
        read_only_fields = fields


class ConversationInputSerializer(serializers.Serializer):
    """POST and PUT take every field (``provider`` and ``model`` required); PATCH any subset."""

    title = StrictCharField(
        max_length=TITLE_MAX_LENGTH, allow_blank=True, required=False, trim_whitespace=True
    )
    provider = serializers.ChoiceField(choices=ChatProvider.choices)
    model = StrictCharField(max_length=MODEL_MAX_LENGTH, trim_whitespace=True)
    system_prompt = StrictCharField(
        allow_blank=True,
        required=False,
        trim_whitespace=False,
        max_length=settings.CHAT_MAX_SYSTEM_PROMPT_CHARS,
    )
    options = serializers.JSONField(required=False)

    def validate_options(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("options must be an object.")
        return value

    def validate(self, attrs):
        for name in ("title", "model", "system_prompt"):
            if "\x00" in attrs.get(name, ""):
                raise serializers.ValidationError({name: "NUL characters are not allowed."})
        return attrs


class StrictCharField(serializers.CharField):
    """A string, not a number turned into one (DRF's CharField accepts ``123``)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class MessageInputSerializer(serializers.Serializer):
    content = StrictCharField(max_length=settings.CHAT_MAX_CONTENT_CHARS, trim_whitespace=False)

    def validate_content(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("content may not be blank.")
        if "\x00" in value:
            raise serializers.ValidationError("NUL characters are not allowed.")
        return value


class MessagePairSerializer(serializers.Serializer):
    """What a message POST and a regenerate answer."""

    user_message = MessageSerializer()
    assistant_message = MessageSerializer()


class MessageListQuerySerializer(serializers.Serializer):
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=settings.CHAT_MESSAGES_MAX_PAGE_SIZE
    )
