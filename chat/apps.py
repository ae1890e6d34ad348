from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from canvas.core.sweeps import register_sweep
        from chat.services import replies_interrupt_stale

        # A reply whose process died ends `interrupted` so the user can regenerate.
        register_sweep(replies_interrupt_stale)
