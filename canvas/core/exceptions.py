"""Domain errors raised by services, and their one mapping to HTTP responses.

Services raise ``ApplicationError`` (a 400 with field errors) or ``NotFoundError`` (a 404);
views never build error responses by hand. The socket consumer maps the same classes to
``error`` messages.

Every error under ``/api/`` is ``{"detail", "code", …}``: DRF's exceptions pass through
``exception_handler`` below; what Django answers before DRF is reached (an unknown URL, a
disallowed ``Host``, a body over the limit, a server fault, in DEBUG too) goes through
``canvas.core.middleware.ApiErrorMiddleware`` and ``error_body``.
"""

import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status as http_status
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A client's mistake that a service detected: answered with 400.

    ``errors`` maps a key (a node id, an edge id, a field name or ``"graph"``) to a list of
    ``{"field", "message"}`` dicts, the error map of the design.
    """

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, errors: dict | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        if code:
            self.code = code

    def socket_fields(self) -> dict[str, Any]:
        """Members of the socket's ``error`` message besides ``code``, ``message`` and
        ``request_id``."""
        return {}


class NotFoundError(ApplicationError):
    """Missing, or not the caller's: the same answer either way (no existence leak)."""

    status_code = 404
    code = "not_found"


class ThrottledError(ApplicationError):
    """Over a throttle's rate (``canvas.core.throttles``). The socket answers ``error``
    ``throttled`` with ``retry_after``; over HTTP it is DRF's ``Throttled``: 429 with
    ``Retry-After``. Both carry the wait in whole seconds, rounded up."""

    status_code = 429
    code = "throttled"

    def __init__(self, *, wait: float | None):
        self.retry_after = max(1, math.ceil(wait or 0))
        super().__init__(
            f"Request was throttled. Expected available in {self.retry_after} seconds."
        )

    def socket_fields(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}


class RequestTooLarge(drf_exceptions.APIException):
    status_code = http_status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self):
        super().__init__(too_large_detail())


def too_large_detail() -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    return f"request body too large (limit {limit / (1024 * 1024):g} MB)"


# The code of an error answer Django (not DRF) produced, by status.
_CODES_BY_STATUS = {
    400: ("Bad request.", "bad_request"),
    401: ("Authentication credentials were not provided.", "not_authenticated"),
    403: ("Forbidden.", "permission_denied"),
    404: ("Not found.", "not_found"),
    405: ("Method not allowed.", "method_not_allowed"),
    413: ("Request body too large.", "too_large"),
    429: ("Too many requests.", "throttled"),
    500: ("Server error.", "server_error"),
    503: ("Service unavailable.", "unavailable"),
}


def error_body(status: int, detail: str | None = None, code: str | None = None) -> dict:
    """``{"detail", "code"}`` for an error status, with the usual words when none are given."""
    default_detail, default_code = _CODES_BY_STATUS.get(
        status, ("Server error." if status >= 500 else "Bad request.", "error")
    )
    return {"detail": detail or default_detail, "code": code or default_code}


def _first_leaf(value):
    """The first message (or code) of DRF's nested error structure."""
    while isinstance(value, dict | list) and value:
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
    return value if isinstance(value, str) else None


def _validation_body(exc: drf_exceptions.ValidationError) -> dict:
    detail, codes = exc.detail, exc.get_codes()
    if isinstance(detail, dict) and set(detail) != {"non_field_errors"}:
        return {"detail": "Invalid input.", "code": "invalid", "errors": detail}
    # A message about the input as a whole: it is the detail.
    return {
        "detail": str(_first_leaf(detail) or "Invalid input."),
        "code": _first_leaf(codes) or "invalid",
    }


def _api_exception(exc):
    """Django's and our exceptions as the DRF exception that answers them (or ``exc``)."""
    if isinstance(exc, NotFoundError):
        return Http404(exc.message)
    if isinstance(exc, ThrottledError):
        return drf_exceptions.Throttled(wait=exc.retry_after)
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLarge()
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return drf_exceptions.ParseError(str(exc), code="too_many_fields")
    if isinstance(exc, SuspiciousOperation):
        return drf_exceptions.ParseError("Bad request.", code="bad_request")
    if isinstance(exc, DjangoValidationError):
        return drf_exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, PermissionDenied):
        return drf_exceptions.PermissionDenied()
    return exc


def exception_handler(exc, context):
    if is_outage(exc):
        return unavailable_response(exc)
    if isinstance(exc, ApplicationError) and not isinstance(exc, NotFoundError | ThrottledError):
        response_data = {"detail": exc.message, "code": exc.code}
        if exc.errors:
            response_data["errors"] = exc.errors
        exc = drf_exceptions.APIException(response_data)
        exc.status_code = 400
        response = drf_exception_handler(exc, context)
        if response is not None:
            response.data = response_data
        return response
    exc = _api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = _validation_body(exc)
    elif isinstance(response.data, dict) and "detail" in response.data:
        if "code" not in response.data:
            codes = exc.get_codes() if isinstance(exc, drf_exceptions.APIException) else None
            response.data["code"] = _first_leaf(codes) or error_body(response.status_code)["code"]
    else:
        response.data = error_body(response.status_code, str(_first_leaf(response.data) or ""))
    return response


# --- outages: 503, never 500 -----------------------------------------------------------------

# Seconds a client is asked to wait before retrying while the database or Redis is away.
UNAVAILABLE_RETRY_AFTER = 5
UNAVAILABLE_DETAIL = (
    "The service is temporarily unavailable (its database or Redis cannot be reached); retry later."
)


def _outage_types() -> tuple[type[BaseException], ...]:
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    # psycopg's errors reach here as Django's (its pool's PoolTimeout too: a subclass of
    # psycopg.OperationalError, wrapped by Django's database wrapper).
    return (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError, BrokerError)


def is_outage(exc: BaseException) -> bool:
    """The database or Redis (or the broker) could not be reached: not the client's fault."""
    return isinstance(exc, _outage_types())


def unavailable_response(exc: BaseException):
    """503 ``{"detail", "code": "unavailable"}`` with ``Retry-After`` (the cause is logged)."""
    from rest_framework.response import Response

    logger.warning("503 unavailable: %s: %s", type(exc).__name__, exc)
    return Response(
        error_body(503, UNAVAILABLE_DETAIL),
        status=503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


class UnavailableMiddleware:
    """The same 503 for views outside DRF (pages, admin): JSON under ``/api/``, text elsewhere."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_outage(exception):
            return None
        from django.http import HttpResponse, JsonResponse

        logger.warning("503 unavailable: %s: %s", type(exception).__name__, exception)
        if request.path.startswith("/api/"):
            response = JsonResponse(error_body(503, UNAVAILABLE_DETAIL), status=503)
        else:
            response = HttpResponse(UNAVAILABLE_DETAIL, status=503, content_type="text/plain")
        response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
        return response
