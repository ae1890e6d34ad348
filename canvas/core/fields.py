"""Serializer fields shared by the apps' serializers."""

from rest_framework import serializers

LINK_HELP = "This item's own endpoint (absolute URL); the browsable API shows it as a link."


class StrictCharField(serializers.CharField):
    """A ``CharField`` that takes text only: DRF's would store ``123`` as ``"123"`` and
    ``true`` as ``"True"``; here a number, boolean, list or object is a 400 on the field."""

    default_error_messages = {"not_a_string": "Not a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class DetailLinkField(serializers.HyperlinkedIdentityField):
    """``url`` of a list item: the absolute URL of the object's own endpoint (the route
    ``view_name`` with the object's primary key as ``pk``). Read-only; the serializer needs the
    request in its context (``context={"request": request}``)."""

    def __init__(self, view_name: str, **kwargs):
        kwargs.setdefault("help_text", LINK_HELP)
        super().__init__(view_name=view_name, **kwargs)
