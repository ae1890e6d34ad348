"""``http``: an HTTP request through the API adapter; ``{name}`` placeholders are inputs.

Placeholders may appear in ``url``, header values and ``body``; a header value may also hold
``{secret:NAME}``, filled from the owner's stored key NAME at run time (not a variable, never
stored in plain text).
"""

from urllib.parse import urlsplit

from graphs.registry import NodeType, Port, PortType, error

from . import placeholders
from .schema import CACHE_OFF

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def _templated_fields(config):
    """(field, text, allow_secrets) for each text that may hold placeholders."""
    yield "config.url", config.get("url", ""), False
    headers = config.get("headers", {})
    if isinstance(headers, dict):
        for name, value in headers.items():
            yield f"config.headers.{name}", value, True
    yield "config.body", config.get("body", ""), False


class HttpNode(NodeType):
    type = "http"
    label = "HTTP request"
    description = (
        "Calls a URL (private addresses refused). {name} placeholders in url, header values "
        "and body are input ports; a header value {secret:NAME} uses your stored key NAME."
    )
    outputs = (
        Port("status", PortType.NUMBER, description="The response status code."),
        Port("body", PortType.TEXT, description="The response body as text."),
        Port("json", PortType.JSON, description="The body parsed as JSON (null if it is not)."),
    )
    dynamic_inputs = True
    config_schema = {
        "type": "object",
        "properties": {
            "method": {"enum": list(METHODS), "default": "GET"},
            "url": {"type": "string", "maxLength": 2048},
            "headers": {
                "type": "object",
                "propertyNames": {"pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$"},
                "additionalProperties": {"type": "string"},
                "default": {},
            },
            "body": {"type": "string", "default": ""},
            "timeout_s": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 300,
                "default": 30,
            },
            "cache": CACHE_OFF,
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    @classmethod
    def dynamic_input_ports(cls, config):
        names: dict[str, None] = {}
        for _field, text, allow_secrets in _templated_fields(config):
            for name in placeholders.variables_lenient(text, allow_secrets=allow_secrets):
                names.setdefault(name)
        return [Port(name, PortType.ANY, description="Placeholder variable.") for name in names]

    @classmethod
    def extra_config_errors(cls, config):
        errors = []
        for field, text, allow_secrets in _templated_fields(config):
            try:
                placeholders.parse(text, allow_secrets=allow_secrets)
            except placeholders.TemplateSyntaxError as exc:
                errors.append(error(field, exc.message))
        url = config.get("url", "")
        if url and not errors and "{" not in url.replace("{{", ""):
            # A URL without placeholders can be checked now; one with them, at run time.
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                errors.append(error("config.url", "Enter an http:// or https:// URL."))
        return errors
