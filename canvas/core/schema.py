"""The OpenAPI schema's error answers: every operation documents the errors it can give.

``CanvasAutoSchema`` (``DEFAULT_SCHEMA_CLASS``) adds, to each operation that does not declare
them itself, ``{"detail", "code", "errors"?}`` bodies for 400 and 404 (every operation), 401
and 403 (operations that need a user), 413 and 415 (operations that take a body), 429
(throttled operations) and 503 (every operation: the database or Redis is away), so a client,
and schemathesis in the suite, can rely on the schema for every status the server answers.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ApiErrorSerializer(serializers.Serializer):
    """The body of every error under /api/."""

    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(help_text="What went wrong, for a program (`invalid`, …).")
    errors = serializers.JSONField(
        required=False,
        help_text="Bad input: the fields at fault and their messages, "
        '`{<field, node id, edge id or "graph">: [...]}`.',
    )


_DESCRIPTIONS = {
    400: "Bad input (`errors` names the fields) or a body that cannot be parsed.",
    401: "No credentials, or bad ones.",
    403: "Not allowed (a session request without its CSRF token).",
    404: "Not found, or not yours.",
    413: "`too_large`: the body is over the limit.",
    415: "`unsupported_media_type`.",
    409: "`idempotency_in_flight`: a request with this `Idempotency-Key` is still being handled.",
    422: "`idempotency_key_reused`: this `Idempotency-Key` was sent with another request.",
    429: "`throttled`: too many requests; `Retry-After` says when to try again.",
    503: "`unavailable`: the database or Redis cannot be reached; `Retry-After` says when to "
    "try again.",
}
# The statuses an operation taking ``Idempotency-Key`` adds (``idempotency_responses``).
IDEMPOTENCY_STATUSES = (409, 422)
_BODY_METHODS = ("POST", "PUT", "PATCH")


class CanvasAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status in self._error_statuses():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    OpenApiResponse(ApiErrorSerializer, description=_DESCRIPTIONS[status]),
                    str(status),
                    direction=direction,
                )
        return dict(sorted(responses.items()))

    def _error_statuses(self) -> list[int]:
        statuses = [400, 404]
        if self._needs_a_user():
            statuses += [401, 403]
        if self.method in _BODY_METHODS:
            statuses += [413, 415]
        if self._throttled():
            statuses.append(429)
        statuses.append(503)
        return statuses

    def _needs_a_user(self) -> bool:
        return any(not isinstance(p, AllowAny) for p in self.view.get_permissions())

    def _throttled(self) -> bool:
        # The mock request of schema generation carries the operation's method and action.
        return bool(self.view.get_throttles())


def idempotency_responses() -> dict:
    """``responses`` entries (409, 422) for an operation that honours ``Idempotency-Key``."""
    return {
        status: OpenApiResponse(ApiErrorSerializer, description=_DESCRIPTIONS[status])
        for status in IDEMPOTENCY_STATUSES
    }
