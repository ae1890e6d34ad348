"""``{name}`` placeholders in user text: parsing and rendering, without ``str.format``.

``str.format`` on user text allows attribute and index access (``{x.__class__}``), conversions
and format specs; here a placeholder is only ``{identifier}``, ``{{`` and ``}}`` are literal
braces, and anything else is a syntax error reported at write time. The template and http node
types derive their input ports from ``variables()``; the engine renders with ``render()``.

In http header values (``allow_secrets=True``), ``{secret:NAME}`` names a stored key that is
filled in at run time; it is not a variable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SECRET = re.compile(r"secret:([A-Za-z0-9_.\-]{1,200})\Z")


class TemplateSyntaxError(ValueError):
    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class Variable:
    name: str


@dataclass(frozen=True)
class SecretRef:
    name: str


Segment = Literal | Variable | SecretRef


def _placeholder(content: str, position: int, *, allow_secrets: bool) -> Variable | SecretRef:
    if allow_secrets:
        secret = SECRET.match(content)
        if secret:
            return SecretRef(secret.group(1))
    if IDENTIFIER.match(content):
        return Variable(content)
    shown = "{" + content + "}"
    if not content.strip() or content.strip().isdigit():
        message = f"Positional placeholder {shown} is not allowed; name it, as in {{name}}."
    elif "!" in content:
        message = f"Conversions such as {shown} are not allowed; use {{name}}."
    elif ":" in content:
        message = f"Format specs such as {shown} are not allowed; use {{name}}."
    elif "." in content:
        message = f"Attribute access such as {shown} is not allowed; use {{name}}."
    elif "[" in content or "]" in content:
        message = f"Index access such as {shown} is not allowed; use {{name}}."
    else:
        message = (
            f"{shown} is not a valid placeholder: use letters, digits and _, "
            "not starting with a digit."
        )
    raise TemplateSyntaxError(message, position)


def parse(text: str, *, allow_secrets: bool = False) -> list[Segment]:
    """Split ``text`` into literal and placeholder segments; raise ``TemplateSyntaxError``."""
    segments: list[Segment] = []
    literal: list[str] = []
    i, length = 0, len(text)
    while i < length:
        char = text[i]
        if char == "{":
            if text.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = text.find("}", i + 1)
            nested = text.find("{", i + 1)
            if end == -1:
                raise TemplateSyntaxError(
                    f"Unclosed '{{' at position {i}; write '{{{{' for a literal brace.", i
                )
            if nested != -1 and nested < end:
                raise TemplateSyntaxError(
                    f"Unexpected '{{' inside a placeholder at position {nested}.", nested
                )
            segment = _placeholder(text[i + 1 : end], i, allow_secrets=allow_secrets)
            if literal:
                segments.append(Literal("".join(literal)))
                literal = []
            segments.append(segment)
            i = end + 1
        elif char == "}":
            if text.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateSyntaxError(
                f"Single '}}' at position {i}; write '}}}}' for a literal brace.", i
            )
        else:
            literal.append(char)
            i += 1
    if literal:
        segments.append(Literal("".join(literal)))
    return segments


def variables(text: str, *, allow_secrets: bool = False) -> list[str]:
    """Variable names in order of first appearance; raises ``TemplateSyntaxError``."""
    names: dict[str, None] = {}
    for segment in parse(text, allow_secrets=allow_secrets):
        if isinstance(segment, Variable):
            names.setdefault(segment.name)
    return list(names)


def variables_lenient(text: Any, *, allow_secrets: bool = False) -> list[str]:
    """``variables()`` that answers ``[]`` for invalid text (port derivation must not raise;
    the syntax error is reported by the node type's config validation)."""
    if not isinstance(text, str):
        return []
    try:
        return variables(text, allow_secrets=allow_secrets)
    except TemplateSyntaxError:
        return []


def secret_names(text: str) -> list[str]:
    """Names of the ``{secret:NAME}`` references in a header value."""
    return [s.name for s in parse(text, allow_secrets=True) if isinstance(s, SecretRef)]


def to_text(value: Any) -> str:
    """How a value enters text: strings as they are, ``None`` as empty, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def render(
    template: str | list[Segment],
    values: Mapping[str, Any],
    *,
    secrets: Callable[[str], str] | None = None,
    allow_secrets: bool = False,
) -> str:
    """Fill the placeholders of ``template`` from ``values`` (``to_text`` for each).

    A missing variable renders as empty text. ``secrets(name)`` resolves ``{secret:NAME}``; it
    is required when the template has one.
    """
    segments = (
        parse(template, allow_secrets=allow_secrets) if isinstance(template, str) else template
    )
    out: list[str] = []
    for segment in segments:
        if isinstance(segment, Literal):
            out.append(segment.text)
        elif isinstance(segment, Variable):
            out.append(to_text(values.get(segment.name)))
        else:
            if secrets is None:
                raise ValueError(f"no resolver for secret {segment.name!r}")
            out.append(secrets(segment.name))
    return "".join(out)
