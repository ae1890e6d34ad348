"""Recovery sweeps of the apps, run by every server process now and then.

An app registers a function (``register_sweep``, from its ``AppConfig.ready``) that finds what
a dead process left behind and ends or re-dispatches it; ``workflows.recovery``'s loop calls
``sweeps_run`` at start and every ``WORKFLOW_RECOVERY_INTERVAL`` seconds. A sweep must be
idempotent and cheap when there is nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_sweeps: list[Callable[[], Any]] = []


def register_sweep(sweep: Callable[[], Any]) -> None:
    if sweep not in _sweeps:
        _sweeps.append(sweep)


def sweeps_run() -> None:
    for sweep in list(_sweeps):
        try:
            sweep()
        except Exception:
            # The database may be starting up or not migrated yet: the next sweep tries again.
            logger.warning("recovery sweep %s failed", sweep.__qualname__, exc_info=True)
