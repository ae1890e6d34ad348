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
