"""``condition``: routes its value to the ``true`` or the ``false`` port."""

import json

import regex

from graphs.registry import Port, PortType, error

from .base import Node, NodeError
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


class ConditionNode(Node):
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

    # --- behaviour (engine) ---------------------------------------------------------------

    cacheable = True

    def run(self, ctx):
        taken = evaluate(
            ctx.config.get("operator", "equals"),
            ctx.inputs.get("value"),
            ctx.config.get("operand", ""),
        )
        return {"true" if taken else "false": ctx.inputs.get("value")}


# A regex that runs longer than this fails the node (catastrophic backtracking).
MATCH_TIMEOUT_S = 1.0
_FALSY_TEXT = frozenset({"", "false", "0", "no", "off", "null", "none"})


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def _number(value, what: str) -> float:
    if not _is_number(value):
        raise NodeError(f"{what} {value!r} is not a number.")
    return float(value)


def evaluate(operator: str, value, operand) -> bool:
    """Whether ``value`` satisfies ``operator`` with ``operand``.

    ``equals`` compares numbers as numbers ("5" equals 5) and anything else as text; ``contains``
    looks into text, lists (an element) and objects (a key); ``truthy`` treats "false", "0",
    "no", "off" and blank text as false.
    """
    if operator in ("equals", "not_equals"):
        if _is_number(value) and _is_number(operand):
            same = float(value) == float(operand)
        elif isinstance(value, bool) or isinstance(operand, bool):
            same = _truthy(value) == _truthy(operand)
        else:
            same = value == operand or _text(value) == _text(operand)
        return same if operator == "equals" else not same
    if operator == "contains":
        if isinstance(value, list):
            return operand in value or _text(operand) in [_text(item) for item in value]
        if isinstance(value, dict):
            return _text(operand) in value
        return _text(operand) in _text(value)
    if operator == "matches":
        try:
            return regex.search(_text(operand), _text(value), timeout=MATCH_TIMEOUT_S) is not None
        except TimeoutError:
            raise NodeError(
                f"The regular expression took longer than {MATCH_TIMEOUT_S:g} s on this input."
            ) from None
    if operator == "gt":
        return _number(value, "The value") > _number(operand, "The operand")
    if operator == "lt":
        return _number(value, "The value") < _number(operand, "The operand")
    if operator == "truthy":
        return _truthy(value)
    if operator == "is_empty":
        return value is None or (
            isinstance(value, str | list | dict)
            and not (value.strip() if isinstance(value, str) else value)
        )
    raise NodeError(f"Unknown operator {operator!r}.")


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_TEXT
    return bool(value)
