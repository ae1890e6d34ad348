"""The one scoping base for viewsets over a user's objects.

DRF runs object permissions only on single objects, never on lists, so scoping by owner in a
permission class is not enough; here the queryset itself always comes from a selector that
takes the requesting user. Subclasses implement ``owner_queryset`` and ``owner_object``;
``get_queryset`` and ``get_object`` are built from them and may not be overridden, so a new
viewset cannot forget the scoping.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated


class OwnerScopedViewSet(viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated]
    # For schema generation, which has no user: an empty queryset of this model.
    model: ClassVar[type[Model]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("get_queryset", "get_object"):
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}; implement owner_queryset / owner_object."
                )

    def owner_queryset(self, user) -> QuerySet:
        """The user's objects (a selector call)."""
        raise NotImplementedError

    def owner_object(self, user, pk: Any) -> Model:
        """One of the user's objects, or ``NotFoundError`` (missing, or not theirs)."""
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return self.owner_queryset(self.request.user)

    def get_object(self):
        return self.owner_object(self.request.user, self.kwargs[self.lookup_url_kwarg or "pk"])
