"""Which node of a run can go next: readiness, skip propagation and the run's outputs.

Plain data in, plain data out: no Django, no threads, no clock. The engine's runner
(``workflows/engine.py``) tells the scheduler what happened to a node and gets back what that
decided; the recorder (``workflows/recorder.py``) writes it down.

The rules (docs/executions.md, "Scheduling"):

- a node is decided once every edge into it has resolved: its source finished (the value
  travels along the edge) or was skipped, or its source did not produce that port (a
  condition's branch not taken): the edge is *dead*;
- a decided node is **skipped** when a *required* input port is fed by a dead edge, or when
  every edge into it is dead (it is only reachable through the branch not taken); otherwise it
  is **ready**. A skipped node's edges die in turn. An optional port fed by a dead edge is
  simply absent from the node's inputs;
- the run's outputs are the ``value`` of each collecting node (the ``output`` type) that
  succeeded or answered from the cache, under its name; a skipped one is absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Node run statuses (the values of ``workflows.models.NodeRunStatus``).
PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
SKIPPED, CANCELLED, CACHED = "skipped", "cancelled", "cached"
# A node whose outputs exist.
PRODUCED = frozenset({SUCCEEDED, CACHED})
# A node a run stopped before it finished (nothing else will finish it).
UNFINISHED = frozenset({PENDING, RUNNING})

Decision = tuple[str, Literal["ready", "skipped"]]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """What the scheduler needs of a node."""

    id: str
    # Input ports that must be fed (the type's required ports for this config).
    required: frozenset[str] = frozenset()
    # For a collecting node (``output``): the name its ``value`` takes in the run's outputs.
    collects: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    source_port: str
    target: str
    target_port: str


class Scheduler:
    """One run's DAG state. Feed it outcomes; it answers with the nodes they decided."""

    def __init__(self, nodes: Iterable[NodeSpec], edges: Iterable[Edge]):
        self.nodes: dict[str, NodeSpec] = {node.id: node for node in nodes}
        self.in_edges: dict[str, list[Edge]] = {nid: [] for nid in self.nodes}
        self.out_edges: dict[str, list[Edge]] = {nid: [] for nid in self.nodes}
        for edge in edges:
            self.in_edges[edge.target].append(edge)
            self.out_edges[edge.source].append(edge)
        self._start()

    def fresh(self) -> Scheduler:
        """A scheduler of the same graph with nothing happened yet (the graph's nodes and
        edges are shared: they are never changed after ``__init__``)."""
        other = object.__new__(Scheduler)
        other.nodes, other.in_edges, other.out_edges = self.nodes, self.in_edges, self.out_edges
        other._start()
        return other

    def _start(self) -> None:
        self._unresolved = {nid: len(edges) for nid, edges in self.in_edges.items()}
        self._dead_ports: dict[str, set[str]] = {nid: set() for nid in self.nodes}
        # The values that reached each node, by input port.
        self.inputs: dict[str, dict[str, Any]] = {nid: {} for nid in self.nodes}
        self.status: dict[str, str] = {}
        self.outputs: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_snapshot(
        cls, snapshot: Mapping[str, Any], *, required: Mapping[str, Iterable[str]], collects
    ) -> Scheduler:
        """From an execution's snapshot (``{"nodes": [...], "edges": [...]}``); ``required``
        maps a node id to its required input ports, ``collects(node)`` gives a collecting
        node's output name (None for any other node)."""
        nodes = [
            NodeSpec(
                id=str(node["id"]),
                required=frozenset(required.get(str(node["id"]), ())),
                collects=collects(node),
            )
            for node in snapshot["nodes"]
        ]
        edges = [
            Edge(str(e["source"]), e["source_port"], str(e["target"]), e["target_port"])
            for e in snapshot["edges"]
        ]
        return cls(nodes, edges)

    def initially_ready(self) -> list[str]:
        """Nodes without input edges, in snapshot order."""
        return [nid for nid, count in self._unresolved.items() if count == 0]

    def is_upstream_of(self, sources: set[str], nid: str) -> bool:
        """Whether any edge into ``nid`` comes from one of ``sources``."""
        return any(edge.source in sources for edge in self.in_edges[nid])

    # --- outcomes ---------------------------------------------------------------------------

    def mark(self, nid: str, status: str) -> None:
        """Record a status that decides nothing downstream (running, failed, cancelled)."""
        self.status[nid] = status

    def produced(self, nid: str, outputs: dict[str, Any], *, status: str) -> list[Decision]:
        """``nid`` finished with ``outputs`` (``status`` succeeded or cached): pass them along
        its edges. A port it did not produce kills its edges. Returns the nodes this decided,
        in the order they were decided."""
        self.status[nid] = status
        self.outputs[nid] = outputs
        decided: list[str] = []
        for edge in self.out_edges[nid]:
            if edge.source_port in outputs:
                self.inputs[edge.target][edge.target_port] = outputs[edge.source_port]
            else:
                self._dead_ports[edge.target].add(edge.target_port)
            if self._resolve(edge.target):
                decided.append(edge.target)
        return self._decide(decided)

    def adopt(self, nid: str, status: str, outputs: Mapping[str, Any] | None) -> None:
        """Take the outcome an earlier worker recorded for a node this run never reached."""
        if nid not in self.status:
            self.status[nid] = status
            self.outputs[nid] = dict(outputs or {})

    def unfinished(self) -> list[str]:
        """Nodes never decided, or started and not finished, in snapshot order."""
        return [nid for nid in self.nodes if self.status.get(nid, PENDING) in UNFINISHED]

    def final_outputs(self) -> dict[str, Any]:
        """The run's outputs: each collecting node's ``value`` under its name."""
        return {
            node.collects: self.outputs[nid].get("value")
            for nid, node in self.nodes.items()
            if node.collects is not None and self.status.get(nid) in PRODUCED
        }

    # --- propagation ------------------------------------------------------------------------

    def _resolve(self, target: str) -> bool:
        self._unresolved[target] -= 1
        return self._unresolved[target] == 0

    def _decide(self, nids: list[str]) -> list[Decision]:
        decisions: list[Decision] = []
        stack = list(nids)
        while stack:
            nid = stack.pop()
            dead = self._dead_ports[nid]
            edges = self.in_edges[nid]
            skip = bool(dead & self.nodes[nid].required) or (
                bool(edges) and all(edge.target_port in dead for edge in edges)
            )
            if not skip:
                decisions.append((nid, "ready"))
                continue
            decisions.append((nid, "skipped"))
            self.status[nid] = SKIPPED
            for edge in self.out_edges[nid]:
                self._dead_ports[edge.target].add(edge.target_port)
                if self._resolve(edge.target):
                    stack.append(edge.target)
        return decisions
