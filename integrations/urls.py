from rest_framework.routers import SimpleRouter

from integrations.views import ApiKeyViewSet

router = SimpleRouter()
router.register("keys", ApiKeyViewSet, basename="apikey")

urlpatterns = router.urls
