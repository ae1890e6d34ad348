"""``llm``: a chat completion from a provider (Ollama or Groq)."""

from django.conf import settings

from canvas.core.exceptions import ApplicationError
from graphs.registry import Port, PortType
from integrations.completions import Usage
from integrations.errors import Cancelled, IntegrationError
from integrations.groq import GroqClient
from integrations.keys import key_resolve
from integrations.ollama import OllamaClient

from .base import MAX_NODE_ATTEMPTS, Node, NodeCancelled, NodeContext, NodeError
from .schema import CACHE_ON

PROVIDERS = ("ollama", "groq")


class LLMNode(Node):
    type = "llm"
    label = "LLM"
    description = "Sends the prompt (and optional system prompt) to a model; streams the reply."
    inputs = (
        Port("prompt", PortType.TEXT, description="The user message."),
        Port("system", PortType.TEXT, required=False, description="The system prompt."),
    )
    outputs = (
        Port("text", PortType.TEXT, description="The reply."),
        Port("usage", PortType.JSON, description="Token counts reported by the provider."),
    )
    config_schema = {
        "type": "object",
        "properties": {
            "provider": {"enum": list(PROVIDERS)},
            "model": {"type": "string", "maxLength": 200},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0.7},
            "max_tokens": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": 1_000_000,
                "default": None,
            },
            "json": {
                "type": "boolean",
                "default": False,
                "description": "Ask the model for a JSON object.",
            },
            "seed": {
                "type": ["integer", "null"],
                "default": None,
                "description": "With temperature 0, makes the output cacheable.",
            },
            "cache": CACHE_ON,
        },
        "required": ["provider", "model"],
        "additionalProperties": False,
    }

    # --- behaviour (engine) ---------------------------------------------------------------

    # Waits on the network; may be repeated after a worker died mid-call (a chat completion
    # has no side effect).
    blocking = True
    cacheable = True
    safe_to_repeat = True

    @classmethod
    def is_cacheable(cls, config):
        # Deterministic only with temperature 0 and a fixed seed.
        return (
            super().is_cacheable(config)
            and config.get("temperature") == 0
            and config.get("seed") is not None
        )

    def run(self, ctx: NodeContext) -> dict:
        return run_llm(ctx)


def _client(ctx, *, sleep, max_retries: int):
    options = {"sleep": sleep, "max_retries": max_retries}
    if ctx.config["provider"] == "ollama":
        return OllamaClient(base_url=settings.OLLAMA_BASE_URL, **options)
    try:
        key = key_resolve(user=ctx.owner, provider="groq")
    except ApplicationError as exc:
        raise NodeError(exc.message, code=exc.code) from None
    return GroqClient(api_key=key, **options)


def run_llm(ctx):
    """Stream a chat completion, publishing tokens as they arrive.

    Retries have one owner each: the adapter retries a request that failed before its
    response began (each such retry is reported as ``node.retrying``), the node retries a
    stream that broke after it began (``node.retrying`` again, telling subscribers to drop
    the partial text). Together at most ``MAX_NODE_ATTEMPTS`` requests per node.
    """
    config = ctx.config
    messages = []
    if ctx.inputs.get("system"):
        messages.append({"role": "system", "content": str(ctx.inputs["system"])})
    messages.append({"role": "user", "content": str(ctx.inputs.get("prompt") or "")})
    params = {"temperature": config.get("temperature", 0.7), "json": bool(config.get("json"))}
    if config.get("max_tokens") is not None:
        params["max_tokens"] = config["max_tokens"]
    if config.get("seed") is not None:
        params["seed"] = config["seed"]
    limit = settings.WORKFLOW_MAX_OUTPUT_BYTES
    requests_made = 0

    def sleep(delay: float) -> None:
        # The adapter is about to retry: say so, and let a cancel cut the wait short.
        nonlocal requests_made
        requests_made += 1
        ctx.retrying(f"the request failed before its response began; retrying in {delay:.2f} s")
        if ctx.cancel_event.wait(delay):
            raise NodeCancelled

    while True:
        ctx.check_cancelled()
        requests_made += 1
        client = _client(ctx, sleep=sleep, max_retries=max(0, MAX_NODE_ATTEMPTS - requests_made))
        ctx.on_cancel(client.close)
        parts: list[str] = []
        size = 0
        try:
            stream = client.chat_stream(model=config["model"], messages=messages, **params)
            ctx.on_cancel(stream.cancel)
            usage = None
            for item in stream:
                if isinstance(item, Usage):
                    usage = item
                    continue
                parts.append(item)
                size += len(item.encode())
                if size > limit:
                    stream.cancel()
                    raise NodeError(
                        f"The reply exceeded the size limit of {limit} bytes.",
                        code="output_too_large",
                    )
                ctx.emit_token(item)
        except Cancelled:
            raise NodeCancelled from None
        except IntegrationError as exc:
            if ctx.cancelled:
                raise NodeCancelled from None
            began = bool(parts) or exc.code == "stream_interrupted"
            if exc.retryable and began and requests_made < MAX_NODE_ATTEMPTS:
                ctx.retrying(str(exc))
                continue
            raise NodeError(str(exc), code=exc.code) from None
        finally:
            client.close()
        usage_dict = usage.as_dict() if usage is not None else None
        ctx.usage = usage_dict
        return {"text": "".join(parts), "usage": usage_dict}
