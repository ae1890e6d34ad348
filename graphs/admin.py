"""Admin for graphs: nodes and edges inline, ids read-only, ``version`` bumped on every save.

Forms check each node's type and config and each edge's ends and ports; a save whose result
is still structurally invalid (a cycle, a second edge into one input) keeps none of its node
and edge changes and says why, as the API would refuse it.
"""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from rest_framework import serializers

from graphs import services
from graphs.models import Edge, Graph, Node
from graphs.selectors import graph_nodes_and_edges
from graphs.serializers import check_json
from graphs.validation import node_structural_errors, structural_errors


class NodeForm(forms.ModelForm):
    class Meta:
        model = Node
        fields = ["type", "label", "position_x", "position_y", "config"]

    def clean(self):
        cleaned = super().clean()
        try:
            check_json(cleaned.get("config"))
        except serializers.ValidationError as exc:
            self.add_error("config", exc.detail[0])
            return cleaned
        if "type" in cleaned and isinstance(cleaned.get("config"), dict | list):
            doc = {"type": cleaned["type"], "config": cleaned["config"]}
            for problem in node_structural_errors(doc):
                field = "type" if problem["field"] == "type" else "config"
                self.add_error(field, f"{problem['field']}: {problem['message']}")
        return cleaned


class EdgeForm(forms.ModelForm):
    class Meta:
        model = Edge
        fields = ["source", "source_port", "target", "target_port"]

    def clean(self):
        cleaned = super().clean()
        graph = self.instance.graph if self.instance.graph_id else None
        parent = getattr(self, "parent_graph", None) or graph
        for end in ("source", "target"):
            node = cleaned.get(end)
            if node is not None and parent is not None and node.graph_id != parent.pk:
                self.add_error(end, "This node belongs to another graph.")
        return cleaned


class NodeInline(admin.TabularInline):
    model = Node
    form = NodeForm
    extra = 0
    fields = ["id", "type", "label", "position_x", "position_y", "config"]
    readonly_fields = ["id"]
    show_change_link = False


class EdgeInline(admin.TabularInline):
    model = Edge
    form = EdgeForm
    extra = 0
    fields = ["id", "source", "source_port", "target", "target_port"]
    readonly_fields = ["id"]
    # A select listing every node of every graph would not scale; ids are typed instead.
    raw_id_fields = ["source", "target"]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        form = formset.form
        form.parent_graph = obj
        return formset


@admin.register(Graph)
class GraphAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "version", "updated_at"]
    list_filter = ["owner"]
    search_fields = ["name", "description", "owner__username"]
    readonly_fields = ["id", "version", "created_at", "updated_at"]
    fields = ["id", "owner", "name", "description", "version", "created_at", "updated_at"]
    inlines = [NodeInline, EdgeInline]
    list_select_related = ["owner"]

    def save_related(self, request, form, formsets, change):
        graph = form.instance
        try:
            # A savepoint: an invalid result undoes the inline changes alone, and the
            # admin's own transaction stays usable for its log entry and messages.
            with transaction.atomic():
                super().save_related(request, form, formsets, change)
                errors = structural_errors(*graph_nodes_and_edges(graph=graph))
                if errors:
                    raise _InvalidGraph(errors)
        except _InvalidGraph as exc:
            summary = "; ".join(
                f"{key}: {entry['field']} {entry['message']}"
                for key, entries in exc.errors.items()
                for entry in entries
            )
            messages.error(
                request, f"Nodes and edges not saved, the graph would be invalid: {summary}"
            )
        if change:
            services.graph_touch(graph=graph)


class _InvalidGraph(Exception):
    def __init__(self, errors):
        super().__init__("invalid graph")
        self.errors = errors


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    """Read-only browsing: nodes are edited inline in their graph (so the version moves)."""

    list_display = ["id", "type", "label", "graph"]
    list_filter = ["type"]
    search_fields = ["id", "label", "graph__name"]
    list_select_related = ["graph"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
