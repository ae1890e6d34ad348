"""Ids that clients send (paths, socket messages) as UUIDs."""

import uuid
from typing import Any

from canvas.core.exceptions import NotFoundError


def parse_id(value: Any, *, what: str) -> uuid.UUID:
    """``value`` as a UUID; a malformed id is the same 404 as a missing object (no leak)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise NotFoundError(f"No such {what}.") from None
