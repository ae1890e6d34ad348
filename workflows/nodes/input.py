"""``input``: a value from the execution's ``inputs[name]``, or the configured default."""

from graphs.registry import Port, PortType

from .base import Node


class InputNode(Node):
    type = "input"
    label = "Input"
    description = "Reads the execution's inputs[name]; falls back to `default` when absent."
    outputs = (Port("value", PortType.ANY, description="The input value."),)
    config_schema = {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "maxLength": 200,
                "description": "The key of the execution's inputs to read.",
            },
            "default": {"description": "Used when the execution has no such input."},
        },
        "required": ["name"],
        "additionalProperties": False,
    }

    # --- behaviour (engine) ---------------------------------------------------------------

    def run(self, ctx):
        name = ctx.config.get("name")
        if name in ctx.execution_inputs:
            return {"value": ctx.execution_inputs[name]}
        return {"value": ctx.config.get("default")}
