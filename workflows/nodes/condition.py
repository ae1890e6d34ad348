"""``condition``: routes its value to the ``true`` or the ``false`` port."""

import regex

from graphs.registry import NodeType, Port, PortType, error

from .schema import CACHE_ON

OPERATORS = ("equals", "not_equals", "contains", "matches", "gt", "lt", "truthy", "is_empty")


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


class ConditionNode(NodeType):
    type = "condition"
    label = "Condition"
    description = (
        "Compares its value with `operand`; the taken port carries the value on and the "
        "branch not taken is skipped."
    )
    inputs = (Port("value", PortType.ANY),)
    outputs = (
        Port("true", PortType.ANY, description="The value, when the condition holds."),
        Port("false", PortType.ANY, description="The value, when it does not."),
    )
    config_schema = {
        "type": "object",
        "properties": {
            "operator": {"enum": list(OPERATORS), "default": "equals"},
            "operand": {
                "type": ["string", "number", "boolean", "null"],
                "default": "",
                "description": "Ignored by truthy and is_empty; a regex for matches.",
            },
            "cache": CACHE_ON,
        },
        "additionalProperties": False,
    }

    @classmethod
    def extra_config_errors(cls, config):
        operator = config.get("operator", "equals")
        operand = config.get("operand", "")
        if operator == "matches":
            if not isinstance(operand, str):
                return [error("config.operand", "`matches` needs a regular expression.")]
            try:
                regex.compile(operand)
            except regex.error as exc:
                return [error("config.operand", f"Invalid regular expression: {exc}.")]
        if operator in ("gt", "lt") and not _is_number(operand):
            return [error("config.operand", f"`{operator}` needs a number.")]
        return []
