from django.http import JsonResponse
from django.views import defaults
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

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


# Errors Django answers before DRF is reached (an unknown /api/ URL, a request with too many
# fields, a server fault) are JSON under /api/, like every other API answer; pages elsewhere
# keep Django's own templates.


def _api_error(request, status: int, detail: str):
    return JsonResponse({"detail": detail}, status=status)


def bad_request(request, exception=None):
    if request.path.startswith("/api/"):
        return _api_error(request, 400, "Bad request.")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if request.path.startswith("/api/"):
        return _api_error(request, 403, "Forbidden.")
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return _api_error(request, 404, "Not found.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return _api_error(request, 500, "Server error.")
    return defaults.server_error(request)
