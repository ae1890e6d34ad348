from django.urls import path
from rest_framework.routers import SimpleRouter

from integrations.views import ApiKeyViewSet, ProviderModelsView, ProvidersView

router = SimpleRouter()
router.register("keys", ApiKeyViewSet, basename="apikey")

urlpatterns = router.urls
urlpatterns += [
    path("providers/", ProvidersView.as_view(), name="providers"),
    path("providers/<str:name>/models/", ProviderModelsView.as_view(), name="provider-models"),
]
