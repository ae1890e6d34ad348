from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The shared foundations; an app only for its tables (``IdempotencyKey``)."""

    name = "canvas.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"
