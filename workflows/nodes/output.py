"""``output``: collects its input into the execution's ``outputs[name]``."""

from graphs.registry import Port, PortType

from .base import Node


class OutputNode(Node):
    type = "output"
    label = "Output"
    description = "Collects its value into the execution's outputs under `name`."
    inputs = (Port("value", PortType.ANY),)
    config_schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200, "default": "output"},
        },
        "additionalProperties": False,
    }

    # --- behaviour (engine) ---------------------------------------------------------------

    def run(self, ctx):
        # The engine collects ``value`` into the execution's outputs under config.name.
        return {"value": ctx.inputs.get("value")}
