"""Celery tasks (``WORKFLOW_EXECUTOR=celery``; the app is ``canvas/celery.py``).

A task is a wake-up, never the truth: ``execute`` asks the engine to claim the run on its row
(``workflows/lease.py``), so a task delivered twice, or again after its worker died, finds the
run taken or finished and does nothing.
"""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections

from workflows.engine import execution_run

EXECUTE_TASK = "workflows.execute"


@shared_task(name=EXECUTE_TASK, ignore_result=True)
def execute(execution_id: str) -> str | None:
    """Claim and run one execution; returns its final status, or None when not claimed."""
    # The thread may hold a connection from an earlier task that the database dropped.
    close_old_connections()
    return execution_run(execution_id)
