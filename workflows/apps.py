from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Node types live here (their behaviour needs the engine); the registry lives in
        # graphs, which never imports workflows.
        from graphs.registry import registry

        from .nodes import register_all

        register_all(registry)
