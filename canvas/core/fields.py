"""Serializer fields shared by the apps' input serializers."""

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A ``CharField`` that takes text only: DRF's would store ``123`` as ``"123"`` and
    ``true`` as ``"True"``; here a number, boolean, list or object is a 400 on the field."""

    default_error_messages = {"not_a_string": "Not a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)
