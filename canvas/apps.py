from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class CanvasConfig(AppConfig):
    name = "canvas"
    verbose_name = "AI Canvas"

    def ready(self):
        # Each app's realtime.py registers its socket topics and message handlers.
        autodiscover_modules("realtime")
