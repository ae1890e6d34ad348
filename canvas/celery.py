"""The Celery application: ``WORKFLOW_EXECUTOR=celery`` runs executions in ``celery -A canvas
worker`` processes (any number, on any machine that reaches the database and the broker).

Configuration is Django's settings under the ``CELERY_`` prefix (``canvas/settings.py``). The
worker needs no flag and no other process:

- gossip, mingle and the worker heartbeat are off (forced below, as ``--without-gossip
  --without-mingle --without-heartbeat`` would), like remote control and task events in the
  settings: their pub/sub channels made a Redis outage crash the worker (kombu issue 582), and
  nothing here uses them;
- at start it checks ``CRYPTOGRAPHY_KEY`` against the stored keys (as ``asgi.py`` does), and
  once ready it runs the recovery sweep in a thread, at start and every
  ``WORKFLOW_RECOVERY_INTERVAL`` seconds (``workflows/recovery.py``).
"""

from __future__ import annotations

import logging
import os

from celery import Celery, signals
from kombu.utils.objects import cached_property

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas.settings")
logger = logging.getLogger(__name__)

# Worker features that publish or subscribe on the broker's pub/sub: off whatever the command
# line says (see the module docstring).
WORKER_FEATURES_OFF = {"without_gossip": True, "without_mingle": True, "without_heartbeat": True}


class CanvasCelery(Celery):
    @cached_property
    def Worker(self):  # noqa: N802 - Celery's own attribute name
        from celery.apps.worker import Worker

        class CanvasWorker(Worker):
            def prepare_args(self, **kwargs):
                return super().prepare_args(**{**kwargs, **WORKER_FEATURES_OFF})

        return self.subclass_with_self(CanvasWorker)


app = CanvasCelery("canvas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _django_logging(**_kwargs) -> None:
    """Django's LOGGING (``LOG_LEVEL``) governs the worker's log too: with a receiver here,
    Celery configures no logging of its own."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@signals.worker_init.connect
def _check_encryption_key(**_kwargs) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from integrations.checks import verify_encryption_key

    try:
        verify_encryption_key()
    except ImproperlyConfigured as exc:
        # Celery logs and swallows a receiver's Exception; SystemExit stops the worker.
        raise SystemExit(f"celery worker: {exc}") from None


@signals.worker_ready.connect
def _start_recovery_sweep(sender=None, **_kwargs) -> None:
    from workflows.recovery import background_start

    background_start(worker=True)
    logger.info("worker %s ready (pid %d)", getattr(sender, "hostname", "?"), os.getpid())
