"""The audit log in the admin: read-only, filtered by action, kind of
subject, user and date; `?subject_type=<id>&subject_id=<pk>` lists one
object's history (the flow page links to it)."""

from __future__ import annotations

import json

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from maestra.admin_base import ReadOnlyAdminMixin
from maestra.audit.actions import registered_actions
from maestra.audit.models import AuditEntry


class ActionFilter(admin.SimpleListFilter):
    """The registered actions (not a SELECT DISTINCT over a growing table)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(action, action) for action in sorted(registered_actions())]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action=self.value())
        return queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "action", "who", "subject_link", "details"]
    list_select_related = ["user", "subject_type"]
    list_filter = [
        ActionFilter,
        ("subject_type", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
        ("at", admin.DateFieldListFilter),
    ]
    search_fields = ["subject_repr", "action"]
    date_hierarchy = "at"
    ordering = ["-at", "-id"]
    show_full_result_count = False

    @admin.display(description="who")
    def who(self, obj: AuditEntry) -> str:
        return obj.user.get_username() if obj.user else obj.actor or "—"

    @admin.display(description="subject")
    def subject_link(self, obj: AuditEntry) -> str:
        if obj.subject_type is None or obj.subject_id is None:
            return obj.subject_repr or "—"
        try:
            url = reverse(
                f"admin:{obj.subject_type.app_label}_{obj.subject_type.model}_change", args=[obj.subject_id]
            )
        except NoReverseMatch:  # a kind of object the admin does not show
            return obj.subject_repr
        return format_html('<a href="{}">{}</a>', url, obj.subject_repr or obj.subject_id)

    @admin.display(description="data")
    def details(self, obj: AuditEntry) -> str:
        return json.dumps(obj.data, ensure_ascii=False)[:200]
