"""Admin for stored keys: the secret can be set, never shown (not even as a masked value)."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from integrations import keys
from integrations.models import ApiKey


class ApiKeyAdminForm(forms.ModelForm):
    # Not the model field: a model-bound field is filled from the instance, and the page would
    # carry the plaintext in its HTML even behind a password widget.
    new_secret = forms.CharField(
        label="Secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave blank to keep the current secret.",
    )

    class Meta:
        model = ApiKey
        fields = ["owner", "provider", "name", "is_active"]

    @sensitive_variables()
    def clean(self):
        cleaned = super().clean()
        adding = self.instance._state.adding
        owner = cleaned.get("owner") if adding else self.instance.owner
        provider = cleaned.get("provider") if adding else self.instance.provider
        try:
            if cleaned.get("new_secret") or adding:
                cleaned["new_secret"] = keys.api_key_validate_secret(cleaned.get("new_secret"))
            if owner is not None and provider and cleaned.get("name"):
                cleaned["name"] = keys.api_key_validate_name(
                    owner=owner,
                    provider=provider,
                    name=cleaned["name"],
                    exclude_id=None if adding else self.instance.pk,
                )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error("new_secret" if field == "secret" else field, messages)
        return cleaned

    def _get_validation_exclusions(self):
        # The one-active rule is kept by the service, which deactivates the other key first;
        # the model's check of that constraint (full_clean, with is_active in it) would refuse
        # every activation of a second key.
        exclude = super()._get_validation_exclusions()
        exclude.add("is_active")
        return exclude


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = ["name", "owner", "provider", "hint", "is_active", "last_used_at", "created_at"]
    list_filter = ["provider", "is_active"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["hint", "last_used_at", "created_at", "updated_at"]
    raw_id_fields = ["owner"]

    @method_decorator(sensitive_post_parameters("new_secret"))
    def changeform_view(self, request, *args, **kwargs):
        # Error reports of this page list POST data: not the secret.
        return super().changeform_view(request, *args, **kwargs)

    def get_queryset(self, request):
        # Lists and deletions never need the plaintext.
        return super().get_queryset(request).defer("secret")

    def get_readonly_fields(self, request, obj=None):
        # Moving a key to another owner or provider is a new key, not an edit.
        if obj is not None:
            return [*self.readonly_fields, "owner", "provider"]
        return self.readonly_fields

    @sensitive_variables()
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = keys.api_key_update(
                api_key=obj,
                name=data["name"],
                secret=data.get("new_secret") or None,
                is_active=data["is_active"],
            )
        else:
            saved = keys.api_key_create(
                owner=data["owner"],
                provider=data["provider"],
                name=data["name"],
                secret=data["new_secret"],
                is_active=data["is_active"],
            )
        # The admin logs and redirects with ``obj``; the service saved its own instance.
        obj.pk, obj.hint, obj.is_active = saved.pk, saved.hint, saved.is_active
        obj._state.adding = False
