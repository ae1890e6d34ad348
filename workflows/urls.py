from django.urls import path
from rest_framework.routers import SimpleRouter

from workflows.views import ExecutionViewSet, GraphExecutionsView

router = SimpleRouter()
router.register("executions", ExecutionViewSet, basename="execution")

urlpatterns = [
    # Wired here, not in graphs.urls: graphs never imports workflows.
    path(
        "graphs/<str:graph_id>/executions/",
        GraphExecutionsView.as_view(),
        name="graph-executions",
    ),
    *router.urls,
]
