"""Graph validation: the per-node error map, split into structural and incomplete errors.

Structural errors (unknown type or port, incompatible port types, a second edge into one
input, an edge to a node outside the graph, a self-loop, a cycle, a config that does not match
its schema, size limits) make writes fail with 400. Incomplete ones (a required input not
connected, a required config field not filled) let the graph save; ``validate`` and starting an
execution report them.

Works on plain document dicts (the API's shape, ids as strings) so the API, the importer, the
admin and the engine's snapshot can all use it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from graphs.registry import FieldError, NodeType, ports_compatible, registry

ErrorMap = dict[str, list[FieldError]]
GRAPH_KEY = "graph"


def _add(errors: ErrorMap, key: str, field: str, message: str) -> None:
    errors.setdefault(key, []).append({"field": field, "message": message})


def config_size_error(config: Any) -> str | None:
    size = len(json.dumps(config, ensure_ascii=False, separators=(",", ":")).encode())
    limit = settings.GRAPH_MAX_CONFIG_BYTES
    if size > limit:
        return f"Config is {size} bytes; the limit is {limit}."
    return None


def node_structural_errors(node: Mapping[str, Any]) -> list[FieldError]:
    """Errors of one node on its own: its type and its config."""
    if not registry.has(node["type"]):
        return [{"field": "type", "message": f"Unknown node type {node['type']!r}."}]
    config = node.get("config", {})
    too_big = config_size_error(config)
    if too_big:
        return [{"field": "config", "message": too_big}]
    return registry.get(node["type"]).config_errors(config)


def _node_types(nodes: Iterable[Mapping[str, Any]]) -> dict[str, type[NodeType] | None]:
    return {
        str(node["id"]): registry.get(node["type"]) if registry.has(node["type"]) else None
        for node in nodes
    }


def structural_errors(nodes: list[Mapping[str, Any]], edges: list[Mapping[str, Any]]) -> ErrorMap:
    """Errors that make a write fail, keyed by node id, edge id or ``"graph"``."""
    errors: ErrorMap = {}
    if len(nodes) > settings.GRAPH_MAX_NODES:
        _add(errors, GRAPH_KEY, "nodes", f"At most {settings.GRAPH_MAX_NODES} nodes per graph.")
    if len(edges) > settings.GRAPH_MAX_EDGES:
        _add(errors, GRAPH_KEY, "edges", f"At most {settings.GRAPH_MAX_EDGES} edges per graph.")

    types = _node_types(nodes)
    bad_config: set[str] = set()
    by_id: dict[str, Mapping[str, Any]] = {}
    for node in nodes:
        node_id = str(node["id"])
        by_id[node_id] = node
        for problem in node_structural_errors(node):
            _add(errors, node_id, problem["field"], problem["message"])
            bad_config.add(node_id)

    port_cache: dict[tuple[str, str], dict] = {}

    def ports(node_id: str, direction: str) -> dict:
        # Once per node, not once per edge: deriving template ports parses the template.
        key = (node_id, direction)
        if key not in port_cache:
            node_type, config = types[node_id], by_id[node_id].get("config", {})
            listed = (
                node_type.output_ports(config)
                if direction == "out"
                else (node_type.input_ports(config))
            )
            port_cache[key] = {port.name: port for port in listed}
        return port_cache[key]

    inputs_taken: dict[tuple[str, str], str] = {}
    graph_edges: list[tuple[str, str]] = []
    for edge in edges:
        edge_id = str(edge["id"])
        source, target = str(edge["source"]), str(edge["target"])
        known = True
        for end, node_id in (("source", source), ("target", target)):
            if node_id not in by_id:
                _add(errors, edge_id, end, f"Node {node_id} is not in this graph.")
                known = False
        if source == target:
            _add(errors, edge_id, "target", "An edge cannot join a node to itself.")
            continue
        if not known:
            continue
        graph_edges.append((source, target))

        taken = inputs_taken.setdefault((target, edge["target_port"]), edge_id)
        if taken != edge_id:
            _add(
                errors,
                edge_id,
                "target_port",
                f"Input {edge['target_port']!r} of node {target} already has an edge ({taken}).",
            )

        source_type, target_type = types[source], types[target]
        if source_type is None or target_type is None or {source, target} & bad_config:
            continue  # the node's own error says why; its ports are unknowable
        outputs = ports(source, "out")
        inputs = ports(target, "in")
        out_port, in_port = outputs.get(edge["source_port"]), inputs.get(edge["target_port"])
        if out_port is None:
            _add(
                errors,
                edge_id,
                "source_port",
                f"{edge['source_port']!r} is not an output of this {source_type.type} node "
                f"(outputs: {', '.join(outputs) or 'none'}).",
            )
        if in_port is None:
            _add(
                errors,
                edge_id,
                "target_port",
                f"{edge['target_port']!r} is not an input of this {target_type.type} node "
                f"(inputs: {', '.join(inputs) or 'none'}).",
            )
        if out_port and in_port and not ports_compatible(out_port.type, in_port.type):
            _add(
                errors,
                edge_id,
                "target_port",
                f"Cannot join a {out_port.type} output to a {in_port.type} input.",
            )

    cycle = find_cycle(by_id.keys(), graph_edges)
    if cycle:
        path = " → ".join([*cycle, cycle[0]])
        _add(errors, GRAPH_KEY, "edges", f"The graph has a cycle: {path}.")
        for node_id in cycle:
            _add(errors, node_id, "edges", "This node is on a cycle.")
    return errors


def find_cycle(node_ids: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """One cycle as a list of node ids, or ``None``. Iterative DFS (graphs can be deep)."""
    successors: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        successors[source].append(target)
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(node_ids, white)
    for root in list(color):
        if color[root] != white:
            continue
        stack = [(root, iter(successors[root]))]
        path = [root]
        color[root] = grey
        while stack:
            node, children = stack[-1]
            for child in children:
                if color.get(child, black) == grey:
                    return path[path.index(child) :]
                if color.get(child) == white:
                    color[child] = grey
                    stack.append((child, iter(successors[child])))
                    path.append(child)
                    break
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return None


def incomplete_errors(nodes: list[Mapping[str, Any]], edges: list[Mapping[str, Any]]) -> ErrorMap:
    """What still has to be filled in before the graph can run; it saves meanwhile."""
    errors: ErrorMap = {}
    connected = {(str(edge["target"]), edge["target_port"]) for edge in edges}
    names: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in nodes:
        node_id = str(node["id"])
        if not registry.has(node["type"]):
            continue
        node_type = registry.get(node["type"])
        config = node.get("config", {})
        for problem in node_type.incomplete(config):
            _add(errors, node_id, problem["field"], problem["message"])
        for port in node_type.input_ports(config):
            if port.required and (node_id, port.name) not in connected:
                _add(
                    errors,
                    node_id,
                    f"inputs.{port.name}",
                    f"Required input {port.name!r} is not connected.",
                )
        if node["type"] in ("input", "output") and isinstance(config, dict):
            name = node_type.config_with_defaults(config).get("name")
            if isinstance(name, str) and name.strip():
                names[(node["type"], name)].append(node_id)
    for (node_type_name, name), node_ids in names.items():
        if len(node_ids) > 1:
            for node_id in node_ids:
                _add(
                    errors,
                    node_id,
                    "config.name",
                    f"{len(node_ids)} {node_type_name} nodes are named {name!r}; "
                    "names must be unique.",
                )
    return errors


def merge(*maps: ErrorMap) -> ErrorMap:
    merged: ErrorMap = {}
    for error_map in maps:
        for key, entries in error_map.items():
            merged.setdefault(key, []).extend(entries)
    return merged


def validate_document(nodes: list[Mapping[str, Any]], edges: list[Mapping[str, Any]]) -> dict:
    """``{valid, errors}`` as ``POST /api/graphs/{id}/validate/`` answers it."""
    errors = merge(structural_errors(nodes, edges), incomplete_errors(nodes, edges))
    return {"valid": not errors, "errors": errors}
