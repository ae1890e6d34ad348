# The Celery app loads with Django (the standard layout), so ``@shared_task``s bind to it.
from canvas.celery import app as celery_app

__all__ = ["celery_app"]
