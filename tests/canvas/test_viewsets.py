"""The scoping base: subclasses cannot replace the owner-scoped queryset or object lookup."""

import pytest

from canvas.core.viewsets import OwnerScopedViewSet
from chat.views import ConversationViewSet
from graphs.views import EdgeViewSet, GraphViewSet, NodeViewSet
from integrations.views import ApiKeyViewSet
from workflows.views import ExecutionViewSet


@pytest.mark.parametrize("method", ["get_queryset", "get_object"])
def test_overriding_the_scoped_lookups_is_refused(method):
    with pytest.raises(TypeError, match="owner_queryset / owner_object"):
        type("Leaky", (OwnerScopedViewSet,), {method: lambda self: None})


@pytest.mark.parametrize(
    "viewset",
    [GraphViewSet, NodeViewSet, EdgeViewSet, ConversationViewSet, ApiKeyViewSet, ExecutionViewSet],
)
def test_api_viewsets_over_user_objects_use_the_scoping_base(viewset):
    assert issubclass(viewset, OwnerScopedViewSet)
