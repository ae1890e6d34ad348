"""The recovery sweep: runs that need a worker are dispatched again.

Every server process (Daphne, ``runworker``, ``runserver``) runs the sweep when it starts and
then every ``WORKFLOW_RECOVERY_INTERVAL`` seconds (``background_start``, called by
``canvas/asgi.py``); ``manage.py recover_executions`` runs it on demand. It also prunes the
output cache now and then, and runs the other apps' sweeps (``canvas.core.sweeps``: chat
replies whose process died).
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from canvas.core.sweeps import sweeps_run
from workflows.cache import cache_prune
from workflows.models import Execution, ExecutionStatus
from workflows.services import execution_dispatch

logger = logging.getLogger(__name__)


def executions_recover(*, dispatch: bool = True) -> dict[str, list[str]]:
    """Find runs that need a worker and dispatch them again.

    - ``running`` with a heartbeat older than ``WORKFLOW_STALE_AFTER``: its worker died; the
      next claimer resumes it after its last finished node.
    - ``queued`` for longer than ``WORKFLOW_STALE_AFTER``: its dispatch was probably lost
      (channels-redis drops messages past their expiry, SIGKILL loses a read message).

    Dispatching is a wake-up; the conditional claim makes a duplicate harmless.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKFLOW_STALE_AFTER)
    stale = list(
        Execution.objects.filter(status=ExecutionStatus.RUNNING, heartbeat_at__lt=cutoff)
        .values_list("id", flat=True)
        .order_by("heartbeat_at")[:500]
    )
    stale += list(
        Execution.objects.filter(
            status=ExecutionStatus.RUNNING, heartbeat_at__isnull=True
        ).values_list("id", flat=True)[:500]
    )
    lost = list(
        Execution.objects.filter(status=ExecutionStatus.QUEUED, queued_at__lt=cutoff)
        .values_list("id", flat=True)
        .order_by("queued_at")[:500]
    )
    if dispatch:
        for execution_id in [*stale, *lost]:
            try:
                execution_dispatch(execution_id=execution_id)
            except Exception:
                logger.exception("could not dispatch execution %s", execution_id)
    if stale or lost:
        logger.info("recovery: %d stale running, %d queued re-dispatched", len(stale), len(lost))
    return {"stale": [str(i) for i in stale], "queued": [str(i) for i in lost]}


# --- the recovery loop ---------------------------------------------------------------------

_background: threading.Thread | None = None
_background_lock = threading.Lock()
_background_stop = threading.Event()


def _is_server_process() -> bool:
    # `daphne app`, `python -m daphne app` (argv[0] is daphne/__main__.py), `manage.py runworker`.
    program = sys.argv[0] if sys.argv else ""
    parts = program.replace("\\", "/").split("/")
    servers = ("daphne", "uvicorn", "hypercorn")
    return any(part.startswith(servers) for part in parts[-2:]) or any(
        arg in ("runworker", "runserver") for arg in sys.argv[1:3]
    )


def background_start(*, force: bool = False) -> bool:
    """Start the recovery sweep thread once per process (at start, then periodically).

    With ``WORKFLOW_BACKGROUND=auto`` only server processes (daphne, runworker, runserver)
    start it, so importing ``canvas.asgi`` elsewhere (tests, shells) starts nothing.
    """
    global _background
    mode = str(settings.WORKFLOW_BACKGROUND).lower()
    if not force and (
        mode in ("0", "false", "off", "no") or (mode == "auto" and not _is_server_process())
    ):
        return False
    with _background_lock:
        if _background is not None:
            return False
        _background = threading.Thread(target=_recovery_loop, name="wf-recovery", daemon=True)
        _background.start()
    return True


def _recovery_loop() -> None:
    interval = settings.WORKFLOW_RECOVERY_INTERVAL
    sweeps = 0
    while not _background_stop.is_set():
        try:
            executions_recover()
            sweeps_run()
            sweeps += 1
            if sweeps % 100 == 1:
                cache_prune()
        except Exception:
            # The database may be starting up or not migrated yet: try again later.
            logger.warning("recovery sweep failed", exc_info=True)
        finally:
            close_old_connections()
        _background_stop.wait(interval)
