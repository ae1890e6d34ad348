"""``http``: an HTTP request through the API adapter; ``{name}`` placeholders are inputs.

Placeholders may appear in ``url``, header values and ``body``; a header value may also hold
``{secret:NAME}``, filled from the owner's stored key NAME at run time (not a variable, never
stored in plain text).
"""

import json
from urllib.parse import quote, urlsplit

from django.conf import settings

from canvas.core.exceptions import ApplicationError
from graphs.registry import Port, PortType, error
from integrations.adapter import ApiAdapter
from integrations.errors import Cancelled, IntegrationError
from integrations.guard import AddressGuard
from integrations.keys import key_get_secret_by_name
from integrations.streaming import ResponseStream

from . import placeholders
from .base import MAX_NODE_ATTEMPTS, Node, NodeCancelled, NodeContext, NodeError
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


class HttpNode(Node):
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

    # --- behaviour (engine) ---------------------------------------------------------------

    blocking = True
    # Only a GET whose config turns caching on ("cache" defaults to false here).
    cacheable = True
    # A request that changes something must not be sent twice after a worker died.
    safe_to_repeat = False

    @classmethod
    def is_cacheable(cls, config):
        return config.get("method", "GET") == "GET" and bool(config.get("cache", False))

    @classmethod
    def is_safe_to_repeat(cls, config):
        return config.get("method", "GET") in ("GET", "HEAD")

    def run(self, ctx: NodeContext) -> dict:
        return run_http(ctx)


def render_url(template: str, values) -> str:
    """Fill URL placeholders, percent-encoding each value for where it lands: raw before the
    path (``{base}/items`` may carry a scheme and host), encoded in the path (``/`` kept) and
    fully encoded in the query and fragment (``?q={q}`` with ``cats & dogs``)."""
    out: list[str] = []
    for segment in placeholders.parse(template):
        if isinstance(segment, placeholders.Literal):
            out.append(segment.text)
            continue
        text = placeholders.to_text(values.get(segment.name))
        so_far = "".join(out)
        if "?" in so_far or "#" in so_far:
            out.append(quote(text, safe=""))
        elif "://" in so_far and "/" in so_far.split("://", 1)[1]:
            out.append(quote(text, safe="/"))
        else:
            out.append(text)
    return "".join(out)


def run_http(ctx):
    """Send the request through the adapter and its address guard; read the body
    cancellably. Secrets in headers are resolved here and never leave this function."""
    config = ctx.config
    method = config.get("method", "GET")
    values = ctx.inputs

    used_secrets: dict[str, str] = {}

    def secret(name: str) -> str:
        try:
            used_secrets[name] = key_get_secret_by_name(user=ctx.owner, name=name)
        except ApplicationError as exc:
            raise NodeError(exc.message, code=exc.code) from None
        return used_secrets[name]

    url = render_url(config.get("url", ""), values)
    headers = {
        name: placeholders.render(value, values, secrets=secret, allow_secrets=True)
        for name, value in (config.get("headers") or {}).items()
    }
    # Headers that carry a stored secret: dropped on a redirect to another origin.
    sensitive_headers = [
        name
        for name, value in (config.get("headers") or {}).items()
        if placeholders.secret_names(value)
    ]
    redact = SecretRedactor(used_secrets)
    body = placeholders.render(config.get("body", ""), values) if config.get("body") else None
    if not any(name.lower() == "accept-encoding" for name in headers):
        # The body is read raw (cancellably); ask for it uncompressed.
        headers["Accept-Encoding"] = "identity"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NodeError(f"{url!r} is not an http:// or https:// URL.", code="bad_url")

    def sleep(delay: float) -> None:
        ctx.retrying(f"the request failed before its response began; retrying in {delay:.2f} s")
        if ctx.cancel_event.wait(delay):
            raise NodeCancelled

    timeout_s = float(config.get("timeout_s", 30))
    adapter = ApiAdapter(
        provider="http",
        guard=AddressGuard.from_settings(),
        connect_timeout=min(settings.HTTP_CONNECT_TIMEOUT, timeout_s),
        read_timeout=timeout_s,
        # Only requests that change nothing are retried.
        max_retries=(MAX_NODE_ATTEMPTS - 1) if method in ("GET", "HEAD") else 0,
        sleep=sleep,
    )
    ctx.on_cancel(adapter.close)
    limit = settings.WORKFLOW_MAX_OUTPUT_BYTES
    try:
        response = adapter.request(
            method,
            url,
            data=body.encode() if body is not None else None,
            headers=headers,
            stream=True,
            sensitive_headers=sensitive_headers,
        )
        stream = ResponseStream(response, provider="http")
        ctx.on_cancel(stream.cancel)
        chunks, size = [], 0
        for chunk in stream.iter_bytes():
            size += len(chunk)
            if size > limit:
                stream.cancel()
                raise NodeError(
                    f"The response body exceeded the size limit of {limit} bytes.",
                    code="output_too_large",
                )
            chunks.append(chunk)
    except Cancelled:
        raise NodeCancelled from None
    except IntegrationError as exc:
        if ctx.cancelled:
            raise NodeCancelled from None
        raise NodeError(redact(str(exc)), code=exc.code) from None
    finally:
        adapter.close()
    raw = b"".join(chunks)
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    data = None
    if "json" in response.headers.get("content-type", "").lower():
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    # A server that echoes a secret back (httpbin's /headers, a debug endpoint) must not put
    # it into the node's outputs, which are stored and sent as events.
    return {"status": response.status_code, "body": redact(text), "json": redact(data)}


class SecretRedactor:
    """Replaces every occurrence of the given secrets, in text or in JSON values and keys, with
    ``[secret:NAME]``."""

    def __init__(self, secrets: dict[str, str]):
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted(
            ((name, value) for name, value in secrets.items() if value),
            key=lambda item: len(item[1]),
            reverse=True,
        )

    def __call__(self, value):
        if not self.secrets:
            return value
        if isinstance(value, str):
            for name, secret in self.secrets:
                value = value.replace(secret, f"[secret:{name}]")
            return value
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, dict):
            return {self(key): self(item) for key, item in value.items()}
        return value
