"""The node types of the design, one module each (ports, config schema, behaviour).

``WorkflowsConfig.ready()`` registers ``NODE_TYPES`` into ``graphs.registry.registry``.
"""

from .condition import ConditionNode
from .extract import ExtractNode
from .http import HttpNode
from .input import InputNode
from .llm import LLMNode
from .output import OutputNode
from .template import TemplateNode
from .text import TextNode

NODE_TYPES = (
    InputNode,
    TextNode,
    TemplateNode,
    LLMNode,
    HttpNode,
    ExtractNode,
    ConditionNode,
    OutputNode,
)


def register_all(registry) -> None:
    for node_type in NODE_TYPES:
        registry.register(node_type)
