"""``extract``: a value inside JSON data at a path such as ``a.b[0].c``."""

import re

from graphs.registry import NodeType, Port, PortType, error

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


class ExtractNode(NodeType):
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
