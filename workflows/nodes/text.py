"""``text``: a constant piece of text."""

from graphs.registry import NodeType, Port, PortType

from .schema import CACHE_ON


class TextNode(NodeType):
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

    @classmethod
    def cacheable(cls, config):
        return config.get("cache", True)

    def run(self, ctx):
        return {"text": ctx.config.get("text", "")}
