"""``llm``: a chat completion from a provider (Ollama or Groq)."""

from graphs.registry import NodeType, Port, PortType

from .schema import CACHE_ON

PROVIDERS = ("ollama", "groq")


class LLMNode(NodeType):
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
