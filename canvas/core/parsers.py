"""Request parsing for the whole API (DEFAULT_PARSER_CLASSES) and the socket's frames."""

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, but a document nested too deep for Python's decoder (thousands of
    ``[``) is a 400 instead of a ``RecursionError`` and a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None


def utf8_size_over(text: str | bytes, limit: int) -> bool:
    """Whether ``text`` takes more than ``limit`` bytes in UTF-8, without encoding it when the
    answer is clear from its length (a character is 1 to 4 bytes)."""
    if isinstance(text, bytes) or len(text) > limit:
        return len(text) > limit
    if len(text) * 4 <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def json_loads_bounded(raw: str | bytes, *, max_depth: int) -> Any:
    """``json.loads`` that refuses documents nested deeper than ``max_depth`` with
    ``ValueError``, as it does bad JSON. (Python's decoder raises ``RecursionError`` around a
    thousand levels; a shallower document still nests too deep for the code that handles it.)
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    opening = (b"[", b"{") if isinstance(raw, bytes) else ("[", "{")
    if raw.count(opening[0]) + raw.count(opening[1]) <= max_depth:
        return value  # cannot be deeper than its count of brackets
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise ValueError("nested too deeply")
        stack.extend((child, depth + 1) for child in children)
    return value
