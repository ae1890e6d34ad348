"""Errors under ``/api/`` are JSON ``{"detail", "code"}`` whoever answers them, DEBUG too.

DRF's own errors already are (``canvas.core.exceptions.exception_handler``). This middleware,
first in ``MIDDLEWARE``, covers what Django answers around DRF: a disallowed ``Host`` and a
body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` are refused here before any view runs (DRF's JSON
parser reads the request stream itself, so Django's own size check never sees a JSON body), and
any other error that is not JSON (Django's technical 404 and 500 pages in DEBUG, its default
error pages) is replaced by the JSON body of its status. Pages outside ``/api/`` keep Django's
templates, and DRF responses (the browsable API renders its errors as HTML on purpose) pass.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import JsonResponse

from canvas.core.exceptions import error_body, too_large_detail

API_PREFIX = "/api/"
# Headers of a replaced error answer that still tell the client something.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX)


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_path(request.path_info):
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost:
            return JsonResponse(
                error_body(400, "Invalid Host header.", "disallowed_host"), status=400
            )
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and _declared_length(request) > limit:
            response = JsonResponse(error_body(413, too_large_detail(), "too_large"), status=413)
            # The body was not read: the client must not send another request on it.
            response["Connection"] = "close"
            return response
        response = self.get_response(request)
        if response.status_code >= 400 and not _is_json(response) and not _is_drf(response):
            replacement = JsonResponse(
                error_body(response.status_code), status=response.status_code
            )
            for header in _KEPT_HEADERS:
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response


def _is_json(response) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip().endswith("json")


def _is_drf(response) -> bool:
    # A DRF Response rendered by the renderer the client asked for (HTML for a browser).
    return hasattr(response, "accepted_renderer")
