"""The recovery sweep: runs that need a worker are dispatched again.

The processes that run executions run the sweep when they start and then every
``WORKFLOW_RECOVERY_INTERVAL`` seconds (``background_start``): with ``WORKFLOW_EXECUTOR=inline``
the server process (Daphne, ``runserver``; called by ``canvas/asgi.py``), with ``celery`` every
worker (called by ``canvas/celery.py`` once the worker is ready). ``manage.py
recover_executions`` runs it on demand. It also prunes the output cache now and then, and runs
the other apps' sweeps (``canvas.core.sweeps``: chat replies whose process died).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from canvas.core.sweeps import sweeps_run
from workflows.cache import cache_prune
from workflows.models import Execution, ExecutionStatus
from workflows.services import execution_dispatch

logger = logging.getLogger(__name__)

# A periodic sweep re-sends the same run at most once per RESEND_AFTER × WORKFLOW_STALE_AFTER.
RESEND_AFTER = 3


def executions_recover(
    *, dispatch: bool = True, sent: dict[str, float] | None = None
) -> dict[str, list[str]]:
    """Find runs that need a worker and dispatch them again.

    - ``running`` with a heartbeat older than ``WORKFLOW_STALE_AFTER``: its worker died (or
      lost the database); the next claimer resumes it after its last finished node.
    - ``queued`` for longer than ``WORKFLOW_STALE_AFTER``: its dispatch was probably lost (the
      broker was down when it was sent, or lost its queue in a restart).

    Dispatching is a wake-up; the conditional claim makes a duplicate harmless. ``sent`` is a
    periodic caller's memory (id → ``time.monotonic()`` of its last re-send): an id re-sent
    less than ``RESEND_AFTER`` × ``WORKFLOW_STALE_AFTER`` ago is not sent again, so a backlog
    waiting in the broker is not duplicated by every sweep.
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
        if sent is not None:
            for key in set(sent) - {str(i) for i in [*stale, *lost]}:
                del sent[key]
        clock = time.monotonic()
        resend_after = RESEND_AFTER * settings.WORKFLOW_STALE_AFTER
        for execution_id in [*stale, *lost]:
            key = str(execution_id)
            if sent is not None and key in sent and clock - sent[key] < resend_after:
                continue
            try:
                if execution_dispatch(execution_id=execution_id) and sent is not None:
                    sent[key] = clock
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
    # `daphne app`, `python -m daphne app` (argv[0] is daphne/__main__.py), `manage.py runserver`.
    program = sys.argv[0] if sys.argv else ""
    parts = program.replace("\\", "/").split("/")
    servers = ("daphne", "uvicorn", "hypercorn")
    return any(part.startswith(servers) for part in parts[-2:]) or "runserver" in sys.argv[1:3]


def background_start(*, worker: bool = False) -> bool:
    """Start the recovery sweep thread once per process (at start, then periodically).

    Who sweeps is who runs executions: with ``WORKFLOW_EXECUTOR=inline`` the server process
    (daphne, runserver; ``asgi.py`` calls this), with ``celery`` every worker (``worker=True``
    from ``canvas/celery.py``). ``WORKFLOW_BACKGROUND=0`` turns it off, ``1`` forces it on in
    any process that calls this; importing ``canvas.asgi`` elsewhere (tests, shells) starts
    nothing.
    """
    global _background
    mode = str(settings.WORKFLOW_BACKGROUND).lower()
    if mode in ("0", "false", "off", "no"):
        return False
    if mode == "auto":
        runs_here = worker if settings.WORKFLOW_EXECUTOR == "celery" else _is_server_process()
        if not runs_here:
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
    sent: dict[str, float] = {}  # what this loop re-sent, and when
    while not _background_stop.is_set():
        try:
            executions_recover(sent=sent)
            sweeps_run()
            sweeps += 1
            if sweeps % 100 == 1:
                cache_prune()
        except Exception as exc:
            # The database may be down, starting up or not migrated yet: try again later.
            logger.warning("recovery sweep failed: %s: %s", type(exc).__name__, exc)
        finally:
            close_old_connections()
        _background_stop.wait(interval)
