"""Domain errors raised by services, and their one mapping to HTTP responses.

Services raise ``ApplicationError`` (a 400 with field errors) or ``NotFoundError`` (a 404);
views never build error responses by hand. The socket consumer maps the same classes to
``error`` messages.
"""

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler


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


class NotFoundError(ApplicationError):
    """Missing, or not the caller's: the same answer either way (no existence leak)."""

    status_code = 404
    code = "not_found"


def exception_handler(exc, context):
    if isinstance(exc, NotFoundError):
        exc = Http404(exc.message)
    elif isinstance(exc, ApplicationError):
        response_data = {"detail": exc.message, "code": exc.code}
        if exc.errors:
            response_data["errors"] = exc.errors
        exc = drf_exceptions.APIException(response_data)
        exc.status_code = 400
        response = drf_exception_handler(exc, context)
        if response is not None:
            response.data = response_data
        return response
    elif isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    return drf_exception_handler(exc, context)
