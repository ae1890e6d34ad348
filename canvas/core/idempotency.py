"""``Idempotency-Key`` on POSTs that start something (the IETF httpapi draft's semantics).

The same key from the same user within ``IDEMPOTENCY_KEY_TTL`` (24 h) answers the first
request's status and body again with ``Idempotent-Replayed: true`` and creates nothing; the
same key with another request (method, path or body) answers 422; while the first is still
being handled, 409. Keys live in the database (``core.IdempotencyKey``), so every process
sees them.

How a request goes:

1. its key row is inserted, in flight, and committed on its own (a second request with the
   key now finds it: 409, 422 or a replay);
2. the service that creates the resource links it to the row **in its own transaction**
   (``IdempotencyRecord.link``), so a run or a message is never committed without its key;
3. the response is stored on the row. If that last write is lost (the database went away
   after the commit), a retry is answered from the linked resource (``replay``) with the
   original status, never by creating a second one.

A request that fails before anything was committed (a 5xx, a 503 outage, 409, 429) forgets its
row, so a retry runs afresh. A row in flight for longer than the view's ``in_flight_seconds``
with nothing linked belongs to a request that died: the next request with the key takes it over.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from canvas.core.models import IdempotencyKey

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
# The draft's key is a string; printable ASCII, as the header's sf-string allows.
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")
# Outcomes worth replaying; a 5xx, 409 or 429 is not an outcome: the client may retry afresh.
NOT_STORED = {409, 429}


def schema_parameter():
    """The header, for a view's OpenAPI schema (drf-spectacular)."""
    from drf_spectacular.utils import OpenApiParameter

    return OpenApiParameter(
        HEADER,
        str,
        OpenApiParameter.HEADER,
        required=False,
        description="Send the same key to retry safely: the same key and body within 24 h "
        "answers the first response again (Idempotent-Replayed: true); another body 422; "
        "while the first is in flight 409.",
    )


def _error(status: int, detail: str, code: str) -> Response:
    return Response({"detail": detail, "code": code}, status=status)


def _fingerprint(request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        body = repr(request.data)
    text = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(text.encode()).hexdigest()


def is_replay(request) -> bool:
    """The request carries a key whose first request (same user, method, path and body) has
    its answer stored: it will be answered from the row and creates nothing. The start
    throttles do not count it (``canvas.core.throttles``)."""
    key = request.headers.get(HEADER)
    user = getattr(request, "user", None)
    if key is None or not KEY_PATTERN.fullmatch(key) or not (user and user.is_authenticated):
        return False
    expired = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL)
    return IdempotencyKey.objects.filter(
        owner=user,
        key=key,
        fingerprint=_fingerprint(request),
        status_code__isnull=False,
        created_at__gte=expired,
    ).exists()


class IdempotencyRecord:
    """The key row of the request being handled; services call ``link`` inside the
    transaction that creates the resource."""

    def __init__(self, row: IdempotencyKey):
        self.row = row

    def link(self, resource_id: Any) -> None:
        """Name the resource this request created; call inside its creating transaction."""
        IdempotencyKey.objects.filter(pk=self.row.pk).update(resource_id=resource_id)
        self.row.resource_id = resource_id


@dataclass
class Claim:
    """What the key row said: go on with ``record``, answer ``response``, or answer from the
    linked ``resource_id`` (the first request's answer was lost after its commit)."""

    record: IdempotencyRecord | None = None
    response: Response | None = None
    resource_id: Any = None


def _claim(*, user, key: str, fingerprint: str, in_flight_seconds: float) -> Claim:
    """Insert the key in flight, or answer from the row already there."""
    now = timezone.now()
    expired = now - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL)
    abandoned = now - timedelta(seconds=in_flight_seconds)
    for _ in range(3):
        try:
            with transaction.atomic():
                row = IdempotencyKey.objects.create(owner=user, key=key, fingerprint=fingerprint)
            return Claim(record=IdempotencyRecord(row))
        except IntegrityError:
            pass
        existing = IdempotencyKey.objects.filter(owner=user, key=key).first()
        if existing is None:
            continue  # deleted in between: insert again
        unfinished = existing.status_code is None
        if existing.created_at < expired or (
            unfinished and existing.resource_id is None and existing.created_at < abandoned
        ):
            # Expired, or left in flight by a request that died before creating anything.
            IdempotencyKey.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if existing.fingerprint != fingerprint:
            return Claim(
                response=_error(
                    422,
                    "This Idempotency-Key was used with another request; use a new key.",
                    "idempotency_key_reused",
                )
            )
        if not unfinished:
            return Claim(response=_replay(existing.status_code, existing.response))
        if existing.resource_id is not None and existing.created_at < abandoned:
            return Claim(resource_id=existing.resource_id)
        break
    return Claim(
        response=_error(
            409,
            "A request with this Idempotency-Key is still being handled; retry later.",
            "idempotency_in_flight",
        )
    )


def _replay(status: int, body: Any) -> Response:
    response = Response(body, status=status)
    response[REPLAYED] = "true"
    return response


_prune_counter = 0
PRUNE_EVERY = 100


def _prune_maybe() -> None:
    global _prune_counter
    _prune_counter += 1
    if _prune_counter % PRUNE_EVERY == 1:
        expired = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL)
        IdempotencyKey.objects.filter(created_at__lt=expired).delete()


def idempotent(*, replay: Callable[[Any, Any], Response], in_flight_seconds: float):
    """Decorate a DRF view method that creates something.

    The method receives ``idempotency=`` (an ``IdempotencyRecord``, or None without the
    header) to hand to its service. ``replay(request, resource_id)`` answers a retry whose
    first answer was lost after the resource was committed, with the original status; it is
    used once the first request has been in flight for ``in_flight_seconds`` (until then a
    retry answers 409).
    """

    def decorate(method):
        @functools.wraps(method)
        def wrapper(view, request, *args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return method(view, request, *args, idempotency=None, **kwargs)
            if not KEY_PATTERN.fullmatch(key):
                return _error(
                    400,
                    "Idempotency-Key must be 1 to 255 printable ASCII characters.",
                    "invalid_idempotency_key",
                )
            _prune_maybe()
            claim = _claim(
                user=request.user,
                key=key,
                fingerprint=_fingerprint(request),
                in_flight_seconds=in_flight_seconds,
            )
            if claim.resource_id is not None:
                response = replay(request, claim.resource_id)
                response[REPLAYED] = "true"
                return response
            if claim.response is not None:
                return claim.response
            record = claim.record
            try:
                try:
                    response = method(view, request, *args, idempotency=record, **kwargs)
                except Exception as exc:
                    # DRF's own mapping (400, 404, 503, ...), so that the answer can be kept.
                    response = view.handle_exception(exc)
            except BaseException:
                _forget(record)
                raise
            if response.status_code >= 500 or response.status_code in NOT_STORED:
                if record.row.resource_id is None:
                    _forget(record)
                return response
            _store(record, response)
            return response

        return wrapper

    return decorate


def _forget(record: IdempotencyRecord) -> None:
    try:
        IdempotencyKey.objects.filter(pk=record.row.pk, resource_id__isnull=True).delete()
    except Exception as exc:  # the database may be why we are here
        logger.warning("could not release Idempotency-Key %s: %s", record.row.key, exc)


def _store(record: IdempotencyRecord, response: Response) -> None:
    try:
        IdempotencyKey.objects.filter(pk=record.row.pk).update(
            status_code=response.status_code, response=response.data
        )
    except Exception as exc:  # committed resource, lost answer: replay() covers a retry
        logger.warning("could not store the answer of Idempotency-Key %s: %s", record.row.key, exc)
