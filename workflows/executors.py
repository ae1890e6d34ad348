"""Where executions run: ``WORKFLOW_EXECUTOR=inline`` or ``celery``.

- ``inline`` (default): a bounded thread pool (``WORKFLOW_MAX_CONCURRENT_EXECUTIONS``) in the
  serving process.
- ``celery``: the execution's id goes to the broker as the task ``workflows.execute``
  (``workflows/tasks.py``); ``celery -A canvas worker`` processes run it, on any number of
  machines (``canvas/celery.py``).

A dispatch is a wake-up, never the source of truth: the engine claims a run with a conditional
update (``workflows/lease.py``), so a duplicate does nothing, and a dispatch that could not be
sent (the broker down) or was lost is sent again by the recovery sweep
(``workflows/recovery.py``), which the serving process (inline) or every worker (celery) runs
at start and every ``WORKFLOW_RECOVERY_INTERVAL`` seconds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from celery import current_app
from django.conf import settings

from workflows.engine import execution_run
from workflows.lease import ClaimedRun
from workflows.tasks import EXECUTE_TASK

logger = logging.getLogger(__name__)


class InlineExecutor:
    def __init__(self, max_workers: int):
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="wf-exec")

    def dispatch(self, execution_id: uuid.UUID | str, *, queued: ClaimedRun | None = None) -> bool:
        self.pool.submit(_run_logged, str(execution_id), queued)
        return True


def _run_logged(execution_id: str, queued: ClaimedRun | None) -> None:
    try:
        execution_run(execution_id, queued=queued)
    except Exception:
        logger.exception("execution %s crashed its executor thread", execution_id)


class CeleryExecutor:
    """Sends ``workflows.execute`` to the broker (``CELERY_BROKER_URL``).

    ``app``: the Celery app to send with (default: the current one, ``canvas.celery.app``,
    loaded with the ``canvas`` package; tests pass one bound to a broker of their own).
    """

    def __init__(self, app=None):
        self.app = app

    def dispatch(self, execution_id: uuid.UUID | str, *, queued: ClaimedRun | None = None) -> bool:
        """Send the wake-up; False when the broker cannot take it (the run stays queued and
        the recovery sweep sends it again), never an exception: the run is committed. The
        worker reads the run itself (``queued`` is for an executor in this process)."""
        try:
            (self.app or current_app).send_task(EXECUTE_TASK, args=[str(execution_id)])
        except Exception as exc:  # kombu.exceptions.OperationalError, redis errors, ...
            logger.warning(
                "could not send execution %s to the broker (%s: %s); the recovery sweep "
                "sends it again",
                execution_id,
                type(exc).__name__,
                exc,
            )
            return False
        return True


EXECUTORS = {"inline", "celery"}


_executor = None
_executor_lock = threading.Lock()


def get_executor():
    global _executor
    with _executor_lock:
        if _executor is None:
            kind = settings.WORKFLOW_EXECUTOR
            if kind == "celery":
                _executor = CeleryExecutor()
            elif kind == "inline":
                _executor = InlineExecutor(settings.WORKFLOW_MAX_CONCURRENT_EXECUTIONS)
            else:
                raise ValueError(f"WORKFLOW_EXECUTOR must be 'inline' or 'celery', not {kind!r}")
        return _executor


def reset_executor() -> None:
    """Forget the executor (tests that switch ``WORKFLOW_EXECUTOR``)."""
    global _executor
    with _executor_lock:
        _executor = None
