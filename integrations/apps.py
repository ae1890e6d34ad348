from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers the system check that the configured CRYPTOGRAPHY_KEY reads the stored keys.
        from integrations import checks  # noqa: F401
