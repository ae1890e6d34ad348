"""``template``: text with ``{name}`` placeholders; one required input port per placeholder."""

from functools import lru_cache

from graphs.registry import Port, PortType, error

from . import placeholders
from .base import Node
from .schema import CACHE_ON


class TemplateNode(Node):
    type = "template"
    label = "Template"
    description = (
        "Fills {name} placeholders from its inputs ({{ and }} are literal braces). "
        "Each placeholder is a required input port."
    )
    outputs = (Port("text", PortType.TEXT),)
    dynamic_inputs = True
    config_schema = {
        "type": "object",
        "properties": {
            "template": {"type": "string", "default": ""},
            "cache": CACHE_ON,
        },
        "additionalProperties": False,
    }

    @classmethod
    def dynamic_input_ports(cls, config):
        return [
            Port(name, PortType.ANY, description="Placeholder variable.")
            for name in placeholders.variables_lenient(config.get("template", ""))
        ]

    @classmethod
    def extra_config_errors(cls, config):
        try:
            placeholders.parse(config.get("template", ""))
        except placeholders.TemplateSyntaxError as exc:
            return [error("config.template", exc.message)]
        return []

    # --- behaviour (engine) ---------------------------------------------------------------

    cacheable = True

    def run(self, ctx):
        return {"text": placeholders.render(_segments(ctx.config.get("template", "")), ctx.inputs)}


@lru_cache(maxsize=1024)
def _segments(template: str) -> list:
    # Parsed once per distinct template: a long chain re-renders the same few templates.
    return placeholders.parse(template)
