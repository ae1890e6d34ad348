"""Executions, their node runs, their event log, and the shared output cache.

The database row is the truth about a run: the engine changes ``Execution.status`` only with
conditional updates (``filter(status__in=...).update(...)``) so that exactly one writer wins a
transition, and ``worker`` fences a stale worker out after the recovery sweep took its run over.
"""

from django.conf import settings
from django.db import models

from canvas.core.models import BaseModel


class ExecutionStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING)
TERMINAL_STATUSES = (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


class NodeRunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    CACHED = "cached"


FINISHED_NODE_STATUSES = (
    NodeRunStatus.SUCCEEDED,
    NodeRunStatus.FAILED,
    NodeRunStatus.SKIPPED,
    NodeRunStatus.CANCELLED,
    NodeRunStatus.CACHED,
)


class Execution(BaseModel):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="executions"
    )
    graph = models.ForeignKey("graphs.Graph", on_delete=models.CASCADE, related_name="executions")
    graph_version = models.PositiveIntegerField()
    # The graph document as it was when the run was queued: later edits do not touch a run.
    snapshot = models.JSONField()
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.QUEUED
    )
    error = models.TextField(blank=True, default="")
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Which process runs it ("host:pid:n"); empty while queued. Writes by the engine are
    # conditional on it, so a worker whose run was taken over stops writing.
    worker = models.CharField(max_length=200, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        ordering = ["-queued_at"]
        indexes = [
            models.Index(fields=["owner", "-queued_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self):
        return f"{self.id} ({self.status})"


class NodeRun(BaseModel):
    """One node of one execution. Created when the node starts or is decided (lazily)."""

    # No index of its own: the unique (execution, node_id) constraint leads with it. Fewer
    # indexes keep the engine's batched inserts cheap.
    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="node_runs", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    node_id = models.UUIDField()
    node_type = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=NodeRunStatus.choices, default=NodeRunStatus.PENDING
    )
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)
    cache_key = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["started_at", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "node_id"], name="noderun_unique_node"),
        ]

    def __str__(self):
        return f"{self.node_type} {self.node_id} ({self.status})"


class ExecutionEvent(models.Model):
    """The persisted event log: ``seq`` is gapless from 1 per execution."""

    id = models.BigAutoField(primary_key=True)
    # Indexed through the unique (execution, seq) constraint.
    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    seq = models.PositiveIntegerField()
    event = models.CharField(max_length=32)
    data = models.JSONField(default=dict)
    ts = models.DateTimeField()

    class Meta:
        ordering = ["execution", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "seq"], name="event_unique_seq"),
        ]

    def __str__(self):
        return f"{self.execution_id}#{self.seq} {self.event}"


class NodeOutputCache(models.Model):
    """Outputs of deterministic nodes, by a hash of owner, type, config and inputs.

    Shared by every worker through the database; entries expire (``expires_at``) and the table
    is pruned to ``WORKFLOW_CACHE_MAX_ENTRIES`` rows, oldest first.
    """

    key = models.CharField(max_length=64, primary_key=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    node_type = models.CharField(max_length=64)
    outputs = models.JSONField()
    size = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self):
        return f"{self.node_type} {self.key[:12]}"
