"""Serializer foundations every app may use."""

from __future__ import annotations

from typing import Any, ClassVar


class FieldsBuiltOnceMixin:
    """For a serializer whose output depends on the instance alone: its fields are built once
    per class, not once per ``Serializer(instance).data``.

    DRF builds a serializer's fields on first use by each serializer object (a
    ``ModelSerializer`` reads its model's meta for every field: ≈0.2 ms for the ten fields of
    an execution, a tenth of a run's POST), while a ``ListSerializer`` builds its child's once
    and reads every item through it. Here a top-level serializer without context does the
    same: it reads its instance through one serializer of its class, built once and never
    written to (so threads may share it). Same fields, same values, same ``.data``
    (``ReturnDict`` bound to this serializer). A serializer with a context (links need the
    request), nested in another, or whose own fields were built (a caller may have changed
    them) represents itself as DRF does.
    """

    _reads_for_class: ClassVar[bool] = False

    def to_representation(self, instance) -> Any:
        if (
            self._reads_for_class
            or self.parent is not None
            or self._context
            or "fields" in self.__dict__
        ):
            return super().to_representation(instance)
        return type(self)._class_reader().to_representation(instance)

    @classmethod
    def _class_reader(cls):
        # In the class's own __dict__: a subclass has fields of its own.
        reader = cls.__dict__.get("_class_reader_instance")
        if reader is None:
            reader = cls()
            reader._reads_for_class = True
            reader.fields  # noqa: B018 - built before other threads can see it
            cls._class_reader_instance = reader
        return reader
