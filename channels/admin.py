"""Admin for templates and the message outbox."""

from django.contrib import admin

from channels.models import Message, Template
from customers.admin import ReadOnlyAdminMixin


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "channel", "purpose", "subject", "updated_at"]
    list_filter = ["channel", "purpose"]
    search_fields = ["slug", "name", "subject"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "channel", "purpose"]}),
        ("Content", {"fields": ["subject", "text", "html"]}),
        (
            "Webhook",
            {
                "classes": ["collapse"],
                "description": "Only for webhook templates. The body is the text above.",
                "fields": ["method", "url", "headers", "secret"],
            },
        ),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The outbox. Rows are written by the engine and the delivery worker only."""

    list_display = [
        "id",
        "customer",
        "channel",
        "template_slug",
        "status",
        "reason",
        "flow_id",
        "node_key",
        "is_test",
        "created_at",
        "sent_at",
    ]
    list_select_related = ["customer"]
    list_filter = ["status", "channel", "is_test"]
    search_fields = ["customer__external_id", "template_slug", "reason", "=provider_id"]
    ordering = ["-id"]
    show_full_result_count = False
