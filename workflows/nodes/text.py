"""``text``: a constant piece of text."""

from graphs.registry import Port, PortType

from .base import Node
from .schema import CACHE_ON


class TextNode(Node):
    type = "text"
    label = "Text"
    description = "A constant text."
    outputs = (Port("text", PortType.TEXT),)
    config_schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "default": ""},
            "cache": CACHE_ON,
        },
        "additionalProperties": False,
    }

    # --- behaviour (engine) ---------------------------------------------------------------

    cacheable = True

    def run(self, ctx):
        return {"text": ctx.config.get("text", "")}
