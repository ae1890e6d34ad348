from drf_spectacular.plumbing import build_array_type, build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from canvas.core.throttles import KeysThrottle
from canvas.core.viewsets import OwnerScopedViewSet
from integrations import keys, providers
from integrations.errors import IntegrationError
from integrations.models import ApiKey
from integrations.serializers import (
    ApiKeyCreateSerializer,
    ApiKeyListItemSerializer,
    ApiKeyOutputSerializer,
    ApiKeyUpdateSerializer,
)


@extend_schema_view(
    list=extend_schema(
        summary="Your provider keys (hints only)",
        responses=ApiKeyListItemSerializer(many=True),
    ),
    retrieve=extend_schema(summary="One of your keys (hint only)"),
    create=extend_schema(
        summary="Store a key",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyOutputSerializer},
    ),
    partial_update=extend_schema(
        summary="Rename, rotate the secret, or (de)activate a key",
        request=ApiKeyUpdateSerializer,
        responses={200: ApiKeyOutputSerializer},
    ),
    destroy=extend_schema(summary="Delete a key"),
)
class ApiKeyViewSet(OwnerScopedViewSet):
    """Provider keys, stored encrypted. ``secret`` is write-only; reads show ``hint``."""

    model = ApiKey
    serializer_class = ApiKeyOutputSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def initialize_request(self, request, *args, **kwargs):
        # Django's error reports list POST data of form-encoded requests (the browsable API's
        # forms): not the secret. Same effect as @sensitive_post_parameters("secret").
        request.sensitive_post_parameters = ["secret"]
        return super().initialize_request(request, *args, **kwargs)

    def get_throttles(self):
        if self.request.method in SAFE_METHODS:
            return super().get_throttles()
        return [KeysThrottle()]

    def get_serializer_class(self):
        # By method, not action: the browsable API renders its POST and PATCH forms from a
        # clone of a GET request whose action is still "list" or "retrieve".
        method = self.request.method if self.request is not None else "GET"
        if method == "POST":
            return ApiKeyCreateSerializer
        if method == "PATCH":
            return ApiKeyUpdateSerializer
        return ApiKeyOutputSerializer

    def owner_queryset(self, user):
        return keys.api_key_list(user=user)

    def owner_object(self, user, pk):
        return keys.api_key_get(user=user, key_id=pk)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        items = ApiKeyListItemSerializer(page, many=True, context={"request": request})
        return self.get_paginated_response(items.data)

    def retrieve(self, request, pk=None):
        return Response(ApiKeyOutputSerializer(self.get_object()).data)

    def create(self, request):
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key = keys.api_key_create(owner=request.user, **serializer.validated_data)
        return Response(ApiKeyOutputSerializer(api_key).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        api_key = self.get_object()
        serializer = ApiKeyUpdateSerializer(data=request.data, context={"api_key": api_key})
        serializer.is_valid(raise_exception=True)
        api_key = keys.api_key_update(api_key=api_key, **serializer.validated_data)
        return Response(ApiKeyOutputSerializer(api_key).data)

    def destroy(self, request, pk=None):
        keys.api_key_delete(api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Providers (status and model lists) --------------------------------------------------------


class ProviderUnavailable(APIException):
    """The provider could not answer: 502 with its cause, never a 500."""

    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "provider_unavailable"


class ProviderStatusSerializer(serializers.Serializer):
    name = serializers.CharField()
    reachable = serializers.BooleanField()
    version = serializers.CharField(allow_null=True)
    key_set = serializers.BooleanField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class ProvidersView(APIView):
    """Each provider: reachable or not, its version, whether you have a key, the cause if down."""

    permission_classes = [IsAuthenticated]

    @extend_schema(summary="Provider status", responses=ProviderStatusSerializer(many=True))
    def get(self, request):
        statuses = providers.providers_status(user=request.user)
        return Response([s.as_dict() for s in statuses])


class ProviderModelsView(APIView):
    """The provider's models as it lists them (Groq's with your key; ``chat`` marks chat ones)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Models of a provider",
        description="As the provider lists them: Ollama's `/api/tags` entries, or Groq's "
        "`/models` entries fetched with your active key, each with `chat: true/false`.",
        responses={
            200: build_array_type(build_basic_type(OpenApiTypes.OBJECT)),
            502: OpenApiResponse(
                inline_serializer(
                    "ProviderError",
                    {
                        "detail": serializers.CharField(),
                        "code": serializers.CharField(),
                        "provider": serializers.CharField(),
                    },
                ),
                description="The provider is down or refused the request (a rejected key).",
            ),
        },
    )
    def get(self, request, name: str):
        try:
            models = providers.provider_models(name=name, user=request.user)
        except IntegrationError as exc:
            raise ProviderUnavailable(
                {"detail": exc.message, "code": exc.code, "provider": exc.provider}
            ) from exc
        return Response(models)
