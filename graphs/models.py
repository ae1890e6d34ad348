from django.conf import settings
from django.db import models
from django.db.models import F, Q

from canvas.core.models import BaseModel

NAME_MAX_LENGTH = 200


class Graph(BaseModel):
    """A canvas: nodes joined by edges. ``version`` goes up on every change, through any path."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="graphs"
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    description = models.TextField(blank=True, default="")
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["-updated_at", "id"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="graphs_owner_updated")]

    def __str__(self) -> str:
        return self.name


class Node(BaseModel):
    graph = models.ForeignKey(Graph, on_delete=models.CASCADE, related_name="nodes")
    type = models.CharField(max_length=100)
    label = models.CharField(max_length=NAME_MAX_LENGTH, blank=True, default="")
    position_x = models.FloatField(default=0)
    position_y = models.FloatField(default=0)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.label or f"{self.type} {self.id}"


class Edge(BaseModel):
    """Joins ``source.source_port`` (an output) to ``target.target_port`` (an input).

    Both nodes belong to ``graph``: the services enforce it (a database check cannot see
    across rows).
    """

    graph = models.ForeignKey(Graph, on_delete=models.CASCADE, related_name="edges")
    source = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="outgoing_edges")
    source_port = models.CharField(max_length=100)
    target = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="incoming_edges")
    target_port = models.CharField(max_length=100)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["target", "target_port"], name="graphs_edge_one_per_input"
            ),
            models.CheckConstraint(
                condition=~Q(source=F("target")), name="graphs_edge_no_self_loop"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}.{self.source_port} → {self.target_id}.{self.target_port}"
