from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Node types live here (their behaviour needs the engine); the registry lives in
        # graphs, which never imports workflows.
        from django.db.models.signals import pre_delete

        from graphs.registry import registry

        from .lease import lock_execution_before_delete
        from .models import Execution
        from .nodes import register_all

        register_all(registry)
        # Lock ordering between a cascading delete and the run's owner (see the function).
        pre_delete.connect(lock_execution_before_delete, sender=Execution)
