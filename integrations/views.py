from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from integrations import keys
from integrations.serializers import (
    ApiKeyCreateSerializer,
    ApiKeyOutputSerializer,
    ApiKeyUpdateSerializer,
)


@extend_schema_view(
    list=extend_schema(summary="Your provider keys (hints only)"),
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
class ApiKeyViewSet(viewsets.GenericViewSet):
    """Provider keys, stored encrypted. ``secret`` is write-only; reads show ``hint``."""

    permission_classes = [IsAuthenticated]
    serializer_class = ApiKeyOutputSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def initialize_request(self, request, *args, **kwargs):
        # Django's error reports list POST data of form-encoded requests (the browsable API's
        # forms): not the secret. Same effect as @sensitive_post_parameters("secret").
        request.sensitive_post_parameters = ["secret"]
        return super().initialize_request(request, *args, **kwargs)

    def get_queryset(self):
        return keys.api_key_list(user=self.request.user)

    def get_object(self):
        return keys.api_key_get(user=self.request.user, key_id=self.kwargs["pk"])

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiKeyOutputSerializer(page, many=True).data)

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
