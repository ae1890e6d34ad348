"""Translation between JSON and the key services. ``secret`` is write-only everywhere."""

from rest_framework import serializers

from canvas.core.fields import DetailLinkField, StrictCharField
from integrations.keys import DEFAULT_KEY_NAME, SECRET_MAX_LENGTH
from integrations.models import ApiKey, Provider

_WRITE_ONLY_HELP = "The key itself. Write-only: reads show `hint` (e.g. `gsk_…3f9a`) instead."


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = [
            "id",
            "provider",
            "name",
            "hint",
            "is_active",
            "created_at",
            "updated_at",
            "last_used_at",
        ]
        read_only_fields = fields


class ApiKeyListItemSerializer(ApiKeyOutputSerializer):
    """A key in the list: its fields (hint only) and `url`, the link to it."""

    url = DetailLinkField(view_name="apikey-detail")

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = [*ApiKeyOutputSerializer.Meta.fields, "url"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    provider = serializers.ChoiceField(choices=Provider.choices)
    name = StrictCharField(max_length=200, default=DEFAULT_KEY_NAME)
    # Surrounding whitespace (a pasted newline) is trimmed by the service, not by DRF, so that
    # the field's own messages never echo the value.
    secret = serializers.CharField(
        write_only=True,
        trim_whitespace=False,
        max_length=SECRET_MAX_LENGTH,
        style={"input_type": "password"},
        help_text=_WRITE_ONLY_HELP,
    )
    is_active = serializers.BooleanField(
        default=True,
        # The browsable API's form starts checked, as the API defaults.
        initial=True,
        help_text="Make this the key used for the provider (deactivates the other).",
    )


class ApiKeyUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False)
    secret = serializers.CharField(
        write_only=True,
        required=False,
        trim_whitespace=False,
        max_length=SECRET_MAX_LENGTH,
        style={"input_type": "password"},
        help_text="A new secret (rotates the key in place). " + _WRITE_ONLY_HELP,
    )
    is_active = serializers.BooleanField(required=False)

    def validate(self, attrs):
        # Ignoring a provider silently would let a client believe the key moved.
        provider = self.initial_data.get("provider") if hasattr(self, "initial_data") else None
        instance = self.context.get("api_key")
        if provider is not None and instance is not None and provider != instance.provider:
            raise serializers.ValidationError(
                {"provider": "A key's provider cannot change: store a new key instead."}
            )
        return attrs
