"""The output cache of deterministic nodes: its key, the engine's lookup and rows, pruning.

Entries live in ``NodeOutputCache``, shared by every worker through the database, keyed by a
SHA-256 of the owner, the node type, its config and its inputs. The engine looks a key up with
one plain ``SELECT`` and writes the rows of a flush with one multi-row upsert (an expired entry
for the same key is replaced). Entries expire after ``WORKFLOW_CACHE_TTL``; the table holds at
most ``WORKFLOW_CACHE_MAX_ENTRIES`` rows: after every tenth of that written by a process, and in
the recovery sweep, the expired rows go and the oldest beyond nine tenths of the bound (so the
next tenth fits under it).
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from workflows.models import NodeOutputCache
from workflows.rowwriter import DATETIME, JSON, PLAIN, Writes, adapt_datetime, select_json

# Identifiers from the model, values as parameters.
CACHE_LOOKUP_SQL = (
    f'SELECT "outputs" FROM "{NodeOutputCache._meta.db_table}" '  # noqa: S608
    'WHERE "key" = %s AND "expires_at" > %s'
)
CACHE_COLUMNS = (
    ("key", PLAIN),
    ("owner_id", PLAIN),
    ("node_type", PLAIN),
    ("outputs", JSON),
    ("size", PLAIN),
    ("created_at", DATETIME),
    ("expires_at", DATETIME),
)


def cache_key(*, owner_id: int, node_type: str, config: dict, inputs: dict) -> str:
    payload = json.dumps(
        [owner_id, node_type, config, inputs], sort_keys=True, default=str, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_lookup(key: str) -> dict | None:
    """The outputs stored under ``key``, unless expired."""
    return select_json(CACHE_LOOKUP_SQL, (key, adapt_datetime(timezone.now())))


def cache_row(
    *, key: str, owner_id: int, node_type: str, outputs: dict, now: datetime
) -> tuple[Any, ...]:
    """One row for ``cache_rows_write``, in ``CACHE_COLUMNS`` order."""
    size = len(json.dumps(outputs, default=str))
    expires = now + timedelta(seconds=settings.WORKFLOW_CACHE_TTL)
    return (key, owner_id, node_type, outputs, size, now, expires)


def cache_rows_write(rows: list[tuple[Any, ...]], writes: Writes) -> None:
    """Store ``rows`` with ``writes`` (the engine's flush); a key that exists (an expired
    entry) takes the new values."""
    writes.insert(NodeOutputCache._meta.db_table, CACHE_COLUMNS, rows, upsert_on="key")


_writes_since_prune = 0
_prune_lock = threading.Lock()


def prune_interval() -> int:
    """Rows a process writes between two prunes: a tenth of the bound (every write below 10).

    Finding the oldest rows to drop walks the ``created_at`` index past every row kept (16 ms
    at 10,000 rows, measured on SQLite): done every 200 rows, as before, a full cache paid it
    on every run of a 200-node chain.
    """
    return settings.WORKFLOW_CACHE_MAX_ENTRIES // 10


def cache_prune_maybe(*, written: int) -> None:
    """Prune the cache after every ``prune_interval()`` rows this process wrote."""
    global _writes_since_prune
    with _prune_lock:
        _writes_since_prune += written
        if _writes_since_prune < max(1, prune_interval()):
            return
        _writes_since_prune = 0
    cache_prune()


def cache_prune() -> int:
    """Delete expired entries, then the oldest beyond the bound less one ``prune_interval()``
    (``WORKFLOW_CACHE_MAX_ENTRIES`` - a tenth): the rows written until the next prune fit."""
    now = timezone.now()
    deleted, _ = NodeOutputCache.objects.filter(expires_at__lte=now).delete()
    limit = settings.WORKFLOW_CACHE_MAX_ENTRIES
    keep = limit - prune_interval()
    beyond = list(
        NodeOutputCache.objects.order_by("-created_at").values_list("created_at", flat=True)[
            keep : keep + 1
        ]
    )
    if beyond:
        more, _ = NodeOutputCache.objects.filter(created_at__lte=beyond[0]).delete()
        deleted += more
    return deleted
