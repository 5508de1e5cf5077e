"""Read-only admin pages of the versions and of what the engine records
(runs, node passes, launch records, limitation counters and grants, A/B
assignments, hourly statistics). Nothing here is editable: launched versions
are frozen, drafts are edited on the Flow page, the rest is the engine's."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from customers.admin import ReadOnlyAdminMixin
from flows.admin.dashboard import InternalTableMixin
from flows.models import (
    ABAssignment,
    Edge,
    FlowVersion,
    LaunchRecord,
    LimitationCounter,
    LimitationGrant,
    Node,
    NodePass,
    NodeStat,
    Run,
)
from flows.nodes import REGISTRY  # importing the package registers every kind


class NodeKindFilter(admin.SimpleListFilter):
    """The registered node kinds, not a SELECT DISTINCT over a table that
    grows with every run (Django's default filter for a plain CharField)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(kind, node.label) for kind, node in sorted(REGISTRY.items())]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(kind=self.value())
        return queryset


class EngineRecordAdmin(InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """A table the engine writes: read-only, out of the menu, newest first
    (the order Django's change list falls back to anyway) and without the
    full COUNT(*) of a table that grows with every run."""

    ordering = ["-id"]
    show_full_result_count = False


@admin.register(FlowVersion)
class FlowVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Launched versions are frozen and drafts are edited on the Flow page, so
    nothing is editable here."""

    list_display = [
        "__str__",
        "flow",
        "number",
        "state",
        "is_test",
        "valid",
        "created_at",
        "launched_at",
        "stopped_at",
        "launched_by",
    ]
    list_select_related = ["flow", "launched_by"]
    list_filter = ["state", "is_test"]
    search_fields = ["flow__name"]
    ordering = ["-id"]
    exclude = ["document_json"]
    readonly_fields = ["open_version"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("document_json")

    @admin.display(description="valid", boolean=True)
    def valid(self, obj: FlowVersion) -> bool:
        return obj.is_valid

    @admin.display(description="version page")
    def open_version(self, obj: FlowVersion) -> SafeString:
        url = reverse("admin:flows_flow_version", args=[obj.flow_id, obj.number])
        return format_html('<a href="{}">document, nodes and edges of v{}</a>', url, obj.number)


@admin.register(Node)
class NodeAdmin(EngineRecordAdmin):
    list_display = ["key", "kind", "title", "version"]
    list_select_related = ["version__flow"]
    list_filter = [NodeKindFilter]
    search_fields = ["key", "title", "version__flow__name"]


@admin.register(Edge)
class EdgeAdmin(EngineRecordAdmin):
    list_display = ["from_key", "port", "to_key", "version"]
    list_select_related = ["version__flow"]
    search_fields = ["from_key", "to_key", "version__flow__name"]


class NodePassInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = NodePass
    fields = ["pass_no", "node_key", "kind", "at", "port", "exited_at", "stop_reason"]
    readonly_fields = fields
    ordering = ["pass_no"]
    extra = 0


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "flow",
        "customer",
        "status",
        "node_key",
        "is_test",
        "entered_at",
        "due_at",
        "ended_at",
        "stop_reason",
    ]
    list_select_related = ["flow", "customer"]
    list_filter = ["status", "is_test", "flow"]
    search_fields = ["=customer__external_id", "customer__email", "=node_key"]
    ordering = ["-id"]
    show_full_result_count = False
    inlines = [NodePassInline]


@admin.register(NodePass)
class NodePassAdmin(EngineRecordAdmin):
    list_display = ["id", "run", "node_key", "kind", "pass_no", "at", "port", "exited_at", "stop_reason"]
    list_select_related = ["run"]
    list_filter = [NodeKindFilter]
    search_fields = ["=run__id", "=node_key"]


@admin.register(LaunchRecord)
class LaunchRecordAdmin(EngineRecordAdmin):
    list_display = ["flow", "customer", "launches", "first_launched_at", "last_step_at"]
    list_select_related = ["flow", "customer"]
    list_filter = ["flow"]
    search_fields = ["=customer__external_id", "customer__email"]


@admin.register(LimitationCounter)
class LimitationCounterAdmin(EngineRecordAdmin):
    list_display = ["flow", "node_key", "signature", "window_start", "used", "alerted"]
    list_select_related = ["flow"]
    list_filter = ["flow", "alerted"]
    search_fields = ["node_key", "flow__name"]
    ordering = ["-window_start"]
    # Counted in full: one row per limitation node and window, not per run.
    show_full_result_count = True


@admin.register(LimitationGrant)
class LimitationGrantAdmin(EngineRecordAdmin):
    list_display = ["id", "counter_label", "run", "pass_no", "state", "granted_at"]
    list_select_related = ["counter__flow", "run"]
    list_filter = ["state"]

    @admin.display(description="counter")
    def counter_label(self, obj: LimitationGrant) -> str:
        counter = obj.counter
        return f"{counter.flow.name} · {counter.node_key} · {counter.window_start:%Y-%m-%d %H:%M}"


@admin.register(ABAssignment)
class ABAssignmentAdmin(EngineRecordAdmin):
    list_display = ["flow", "node_key", "customer", "variant", "assigned_at"]
    list_select_related = ["flow", "customer"]
    list_filter = ["flow"]
    search_fields = ["=customer__external_id", "node_key"]


@admin.register(NodeStat)
class NodeStatAdmin(EngineRecordAdmin):
    list_display = ["flow", "node_key", "hour", "metric", "count", "is_test"]
    list_select_related = ["flow"]
    list_filter = ["is_test", "flow"]
    search_fields = ["node_key", "metric"]
    ordering = ["-hour"]
