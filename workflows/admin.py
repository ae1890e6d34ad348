"""Executions in the admin: read-only (the engine is the only writer of a run)."""

from django.contrib import admin
from django.utils.html import format_html_join

from workflows.models import Execution, NodeOutputCache, NodeRun

EVENTS_SHOWN = 500


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class NodeRunInline(ReadOnlyMixin, admin.TabularInline):
    model = NodeRun
    extra = 0
    can_delete = False
    fields = ["node_id", "node_type", "status", "attempts", "started_at", "finished_at", "error"]
    readonly_fields = fields
    ordering = ["started_at", "created_at"]
    show_change_link = False


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "graph", "owner", "status", "queued_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["id", "graph__name", "owner__username"]
    list_select_related = ["graph", "owner"]
    date_hierarchy = "queued_at"
    inlines = [NodeRunInline]
    fields = [
        "id",
        "owner",
        "graph",
        "graph_version",
        "status",
        "error",
        "inputs",
        "outputs",
        "queued_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "worker",
        "cancel_requested",
        "event_log",
    ]
    readonly_fields = fields

    @admin.display(description=f"Events (first {EVENTS_SHOWN})")
    def event_log(self, obj):
        rows = obj.events.order_by("seq")[:EVENTS_SHOWN]
        return format_html_join(
            "\n",
            "<div><code>{}</code> {} {} <small>{}</small></div>",
            ((e.seq, e.ts.isoformat(), e.event, e.data) for e in rows),
        )


@admin.register(NodeOutputCache)
class NodeOutputCacheAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["key", "node_type", "owner", "size", "created_at", "expires_at"]
    list_filter = ["node_type"]
    readonly_fields = ["key", "owner", "node_type", "outputs", "size", "created_at", "expires_at"]

    def has_delete_permission(self, request, obj=None):
        return True  # clearing cache entries is safe
