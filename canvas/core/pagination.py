"""Cursor paging from DRF for the lists that grow while they are read (an event log, a chat).

``CursorPagination`` pages by position in a stable ordering, so a row added while a client
pages through never shifts a page, and a page costs one query whatever its depth. Its cursor is
opaque (``?cursor=…``): clients follow ``next`` and ``previous``. A cursor that does not decode
is a 400 on the ``cursor`` field, like any other bad input (DRF answers 404).
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from canvas.core.exceptions import ApplicationError


class CheckedCursorPagination(CursorPagination):
    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            message = "Not a page cursor: follow a 'next' or 'previous' link."
            raise ApplicationError(
                "Invalid cursor.", errors={"cursor": [{"field": "cursor", "message": message}]}
            ) from None


class ForwardCursorPagination(CheckedCursorPagination):
    """Oldest first, forward only: ``{next, results}`` (an append-only log)."""

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response({"next": self.get_next_link(), "results": data})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }


class NewestPageCursorPagination(CheckedCursorPagination):
    """The newest page first, each page oldest first (a chat): ``{count, next, previous,
    results}``, where ``previous`` links older rows and ``next`` newer ones.

    ``ordering`` must be newest first; pages are read in that order and turned around.
    """

    def paginate_queryset(self, queryset, request, view=None):
        self.count = queryset.count()
        page = super().paginate_queryset(queryset, request, view)
        return None if page is None else page[::-1]

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response(
            {
                "count": self.count,
                # Read newest first, DRF's "next" page holds older rows.
                "next": self.get_previous_link(),
                "previous": self.get_next_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["count", "results"],
            "properties": {
                "count": {"type": "integer"},
                "next": link,
                "previous": link,
                "results": schema,
            },
        }
