"""``llm``: a chat completion from a provider (Ollama or Groq)."""

from django.conf import settings

from canvas.core.exceptions import ApplicationError
from graphs.registry import Port, PortType
from integrations.errors import Cancelled, IntegrationError
from integrations.llm import ReplyTooLarge, completion_stream

from .base import MAX_NODE_ATTEMPTS, Node, NodeCancelled, NodeContext, NodeError
from .schema import CACHE_ON

PROVIDERS = ("ollama", "groq")


class LLMNode(Node):
    type = "llm"
    label = "LLM"
    description = "Sends the prompt (and optional system prompt) to a model; streams the reply."
    streams_text = True
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


def run_llm(ctx: NodeContext) -> dict:
    """Stream a chat completion (``integrations.llm``), publishing tokens as they arrive.

    Each retry is reported as ``node.retrying`` (``ctx.retrying``): the adapter's retries of a
    request that failed before its response began, and a new request after a stream broke
    mid-way (subscribers drop the partial text). At most ``MAX_NODE_ATTEMPTS`` requests.
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
    try:
        reply = completion_stream(
            provider=config["provider"],
            user=ctx.owner,
            model=config["model"],
            messages=messages,
            params=params,
            cancellation=ctx.cancellation,
            on_text=ctx.emit_token,
            on_retry=ctx.retrying,
            max_attempts=MAX_NODE_ATTEMPTS,
            max_bytes=settings.WORKFLOW_MAX_OUTPUT_BYTES,
        )
    except Cancelled:
        raise NodeCancelled from None
    except ReplyTooLarge as exc:
        raise NodeError(exc.message, code=exc.code) from None
    except ApplicationError as exc:  # no Groq key
        raise NodeError(exc.message, code=exc.code) from None
    except IntegrationError as exc:
        raise NodeError(str(exc), code=exc.code) from None
    usage = reply.usage.as_dict() if reply.usage is not None else None
    ctx.usage = usage
    return {"text": reply.text, "usage": usage}
