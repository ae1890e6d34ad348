"""``extract``: a value inside JSON data at a path such as ``a.b[0].c``."""

import contextlib
import json
import re

from graphs.registry import Port, PortType, error

from .base import Node, NodeError
from .schema import CACHE_ON

_KEY = re.compile(r"[^.\[\]]+")
_INDEX = re.compile(r"\[(-?\d+)\]")


class PathSyntaxError(ValueError):
    pass


def parse_path(path: str) -> list[str | int]:
    """``"a.b[0].c"`` → ``["a", "b", 0, "c"]``; ``""`` is the whole value.

    Keys are any text without ``.``, ``[`` or ``]``; indexes are integers (negative counts from
    the end).
    """
    steps: list[str | int] = []
    i = 0
    expect_key = True  # at the start or after a dot
    while i < len(path):
        index = _INDEX.match(path, i)
        if index:
            steps.append(int(index.group(1)))
            i = index.end()
            expect_key = False
            continue
        if path[i] == "[":
            raise PathSyntaxError(f"Bad index at position {i}: use [0], [1], … or [-1].")
        if not expect_key:
            if path[i] != ".":
                raise PathSyntaxError(f"Expected '.' or '[' at position {i}.")
            i += 1
        key = _KEY.match(path, i)
        if not key:
            raise PathSyntaxError(f"Empty key at position {i}.")
        steps.append(key.group(0))
        i = key.end()
        expect_key = False
    return steps


class ExtractNode(Node):
    type = "extract"
    label = "Extract"
    description = "Picks a value out of JSON data by path (a.b[0].c); an empty path is all of it."
    inputs = (Port("data", PortType.ANY),)
    outputs = (Port("value", PortType.ANY),)
    config_schema = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "maxLength": 1000, "default": ""},
            "cache": CACHE_ON,
        },
        "additionalProperties": False,
    }

    @classmethod
    def extra_config_errors(cls, config):
        try:
            parse_path(config.get("path", ""))
        except PathSyntaxError as exc:
            return [error("config.path", str(exc))]
        return []

    # --- behaviour (engine) ---------------------------------------------------------------

    cacheable = True

    def run(self, ctx):
        data = ctx.inputs.get("data")
        path = ctx.config.get("path", "")
        if isinstance(data, str) and path:
            # Text that is JSON (an HTTP body, an LLM answer in JSON mode) is walked as JSON.
            with contextlib.suppress(ValueError):
                data = json.loads(data)
        value = data
        walked = ""
        for step in parse_path(path):
            if isinstance(step, int):
                if not isinstance(value, list):
                    raise NodeError(f"Cannot take [{step}]: {walked or 'the data'} is not a list.")
                if not -len(value) <= step < len(value):
                    raise NodeError(
                        f"Index [{step}] is out of range: {walked or 'the data'} has "
                        f"{len(value)} items."
                    )
                value = value[step]
                walked += f"[{step}]"
            else:
                if not isinstance(value, dict):
                    raise NodeError(
                        f"Cannot take .{step}: {walked or 'the data'} is not an object."
                    )
                if step not in value:
                    raise NodeError(f"No key {step!r} in {walked or 'the data'}.")
                value = value[step]
                walked += f".{step}" if walked else step
        return {"value": value}
