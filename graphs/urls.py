from django.urls import path
from rest_framework.routers import SimpleRouter

from graphs.views import EdgeViewSet, GraphViewSet, NodeTypeListView, NodeViewSet

router = SimpleRouter()
router.register("graphs", GraphViewSet, basename="graph")
# Nested under a graph; /api/graphs/{id}/executions/ is wired by workflows (graphs never
# imports workflows).
router.register(r"graphs/(?P<graph_id>[^/]+)/nodes", NodeViewSet, basename="graph-node")
router.register(r"graphs/(?P<graph_id>[^/]+)/edges", EdgeViewSet, basename="graph-edge")

urlpatterns = [
    path("node-types/", NodeTypeListView.as_view(), name="node-type-list"),
    *router.urls,
]
