from django.conf import settings
from django.http import JsonResponse
from django.views import defaults
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from canvas.core.exceptions import ApplicationError, error_body
from canvas.core.middleware import is_api_path
from canvas.core.throttles import AuthAddressThrottle, AuthUsernameThrottle

API_COLLECTIONS = {
    "graphs": "/api/graphs/",
    "node_types": "/api/node-types/",
    "executions": "/api/executions/",
    "conversations": "/api/conversations/",
    "keys": "/api/keys/",
    "providers": "/api/providers/",
    "schema": "/api/schema/",
    "docs": "/api/docs/",
}


class ApiRootView(APIView):
    """The entry point of the browsable API: links to each collection."""

    @extend_schema(exclude=True)
    def get(self, request):
        return Response(
            {name: request.build_absolute_uri(path) for name, path in API_COLLECTIONS.items()}
        )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class TokenView(ObtainAuthToken):
    """``{username, password}`` → ``{token}``; throttled per client address and per username.

    Bad credentials are ``{"detail", "code": "invalid_credentials"}`` like every other error
    (DRF's own view answers ``{"non_field_errors": [...]}``).
    """

    throttle_classes = [AuthAddressThrottle, AuthUsernameThrottle]
    # The API's parsers (a JSON body nested too deeply is a 400, not a RecursionError).
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    @extend_schema(
        summary="Exchange a username and password for an API token",
        responses={200: TokenSerializer},
    )
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        valid = serializer.is_valid()
        if getattr(request, "axes_locked_out", False):
            # django-axes refused the attempt (too many failures for this username and address).
            raise Throttled(
                wait=settings.AXES_COOLOFF_TIME.total_seconds(),
                detail="Too many failed login attempts: request was throttled.",
            )
        if not valid and set(serializer.errors) == {"non_field_errors"}:
            raise ApplicationError(
                str(serializer.errors["non_field_errors"][0]), code="invalid_credentials"
            )
        return super().post(request, *args, **kwargs)


# Errors Django answers before DRF is reached (an unknown /api/ URL, a request with too many
# fields, a server fault) are JSON under /api/, like every other API answer; pages elsewhere
# keep Django's own templates.


def _json_under_api(default_view, status: int):
    def view(request, *args, **kwargs):
        if is_api_path(request.path):
            return JsonResponse(error_body(status), status=status)
        return default_view(request, *args, **kwargs)

    return view


bad_request = _json_under_api(defaults.bad_request, 400)
permission_denied = _json_under_api(defaults.permission_denied, 403)
page_not_found = _json_under_api(defaults.page_not_found, 404)
server_error = _json_under_api(defaults.server_error, 500)
