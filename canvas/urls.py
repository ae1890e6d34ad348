from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from canvas.views import ApiRootView, TokenView

api_urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    path("", include("graphs.urls")),
    path("", include("workflows.urls")),
    path("", include("chat.urls")),
    path("", include("integrations.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

urlpatterns = [
    path("", TemplateView.as_view(template_name="index.html"), name="home"),
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("canvas.pages")),
]

handler400 = "canvas.views.bad_request"
handler403 = "canvas.views.permission_denied"
handler404 = "canvas.views.page_not_found"
handler500 = "canvas.views.server_error"
