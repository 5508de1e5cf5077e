"""The recorded A/B winners in the admin (SPEC §13): read-only, written only
by the engine (flows/engine/ab_winner.py). Marketers see a winner on the
canvas statistics and in the audit log; this list is the engine's record."""

from __future__ import annotations

from django.contrib import admin

from customers.admin import ReadOnlyAdminMixin
from flows.admin import dashboard
from flows.models import ABWinner


@admin.register(ABWinner)
class ABWinnerAdmin(dashboard.InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["flow", "node_key", "variant", "metric", "confidence", "p_value", "decided_at"]
    list_select_related = ["flow"]
    list_filter = ["metric", "flow"]
    search_fields = ["node_key", "variant"]
    ordering = ["-decided_at"]
    readonly_fields = [
        "flow",
        "node_key",
        "version",
        "variant",
        "metric",
        "confidence",
        "p_value",
        "counts",
        "decided_at",
    ]
