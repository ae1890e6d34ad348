"""JSON-schema fragments several node types share."""

# Deterministic node types cache their outputs unless the config turns it off.
CACHE_ON = {
    "type": "boolean",
    "default": True,
    "description": "Reuse a cached output for identical config and inputs.",
}
CACHE_OFF = {
    "type": "boolean",
    "default": False,
    "description": "Reuse a cached output for identical config and inputs (GET only).",
}
