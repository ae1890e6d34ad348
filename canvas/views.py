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


def _json_under_api(default_view, status: int, detail: str):
    def view(request, *args, **kwargs):
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": detail}, status=status)
        return default_view(request, *args, **kwargs)

    return view


bad_request = _json_under_api(defaults.bad_request, 400, "Bad request.")
permission_denied = _json_under_api(defaults.permission_denied, 403, "Forbidden.")
page_not_found = _json_under_api(defaults.page_not_found, 404, "Not found.")
server_error = _json_under_api(defaults.server_error, 500, "Server error.")
