"""Admin for templates (with a preview for a chosen customer) and the
message outbox."""

import json
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from channels.admin_forms import TemplateForm
from channels.models import Message, Template
from channels.preview import preview
from channels.rendering import SAMPLE_CUSTOMER, RenderError
from channels.sendtest import SendTestError, send_test
from channels.templates import delete_templates, save_template
from customers.admin import ReadOnlyAdminMixin
from customers.models import Customer
from maestra.admin_base import permitted_object

# What the rendered HTML of a preview may load, served on its own URL inside an
# iframe with sandbox="": images, styles and fonts from anywhere, as an email
# client would show them; no script, plugin, form or navigation of the page.
PREVIEW_HTML_POLICY = (
    "default-src 'none'; img-src * data:; style-src * 'unsafe-inline'; font-src * data:; "
    "frame-ancestors 'self'; sandbox"
)


def find_customer(query: str) -> tuple[Customer | None, str]:
    """(the customer with this external id, email or phone (exact), "") or
    (None, what to tell the person who asked)."""
    query = query.strip()
    customer = None
    if query:
        customer = (
            Customer.objects.filter(Q(external_id=query) | Q(email__iexact=query) | Q(phone=query))
            .order_by("pk")
            .first()
        )
    if customer is None:
        return None, f"No customer has the external id, email or phone “{query}”."
    return customer, ""


def preview_parts(rendered: dict) -> list[tuple[str, str, bool]]:
    """(field, text, is_html) rows of a rendered template, in display order."""
    parts = []
    for name, value in rendered.items():
        if isinstance(value, dict | list):
            parts.append((name, json.dumps(value, indent=2, ensure_ascii=False), False))
        else:
            parts.append((name, str(value), name == "html"))
    return parts


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    change_form_template = "admin/channels/template/change_form.html"
    list_display = ["slug", "name", "channel", "purpose", "subject", "updated_at"]
    list_filter = ["channel", "purpose"]
    search_fields = ["slug", "name", "subject"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "channel", "purpose"]}),
        ("Content", {"fields": ["subject", "text", "html"]}),
        ("Engagement tracking", {"fields": ["track_opens", "track_clicks"]}),
        ("Translations", {"fields": ["translations"]}),
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

    def get_urls(self):
        preview_url = path(
            "<path:object_id>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name="channels_template_preview",
        )
        send_test_url = path(
            "<path:object_id>/send-test/",
            self.admin_site.admin_view(self.send_test_view),
            name="channels_template_send_test",
        )
        preview_html_url = path(
            "<path:object_id>/preview/html/",
            self.admin_site.admin_view(self.preview_html_view),
            name="channels_template_preview_html",
        )
        return [preview_url, preview_html_url, send_test_url, *super().get_urls()]

    def save_model(self, request, obj, form, change):
        save_template(template=obj, user=request.user)

    def delete_model(self, request, obj):
        delete_templates(templates=[obj], user=request.user)

    def delete_queryset(self, request, queryset):
        delete_templates(templates=queryset, user=request.user)

    def send_test_view(self, request, object_id):
        """Send the template now, rendered for a chosen customer, to that
        customer or to a given address (channels.sendtest.send_test)."""
        template = permitted_object(
            self, request, object_id, what="template", permission="change", perms=["customers.view_customer"]
        )
        query = (request.POST.get("customer") or request.GET.get("customer") or "").strip()
        to = (request.POST.get("to") or "").strip()
        problem, message = "", None
        if request.method == "POST":
            customer, problem = find_customer(query)
            if customer is not None:
                try:
                    message = send_test(template=template, customer=customer, to=to or None)
                except SendTestError as exc:
                    problem = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Send a test of {template.slug}",
            "subtitle": None,
            "original": template,
            "template_obj": template,
            "query": query,
            "to": to,
            "problem": problem,
            "sent_message": message,
        }
        return TemplateResponse(request, "admin/channels/template/send_test.html", context)

    def _preview(self, request, object_id) -> dict:
        """The template rendered for the customer the request names (external
        id, email or phone) or the sample one: {"template", "query",
        "customer", "problem", "rendered", "render_error"}. A RenderError is
        returned, not raised; the render budget bounds how long it takes."""
        template = permitted_object(self, request, object_id, what="template", permission="view")
        query = (request.GET.get("customer") or "").strip()
        # "" or absent: the customer's own locale; "default": the default text.
        locale = (request.GET.get("locale") or "").strip()
        customer, problem = None, ""
        if query:
            if not request.user.has_perm("customers.view_customer"):
                raise PermissionDenied
            customer, problem = find_customer(query)
        rendered, render_error = None, ""
        if not problem:
            try:
                rendered = preview(
                    template=template,
                    customer=customer if customer else SAMPLE_CUSTOMER,
                    locale=None if not locale else "" if locale == "default" else locale,
                )
            except RenderError as error:
                render_error = str(error)
        return {
            "template": template,
            "query": query,
            "locale": locale,
            "customer": customer,
            "problem": problem,
            "rendered": rendered,
            "render_error": render_error,
        }

    def preview_view(self, request, object_id):
        """The template rendered for a chosen customer, as the engine would
        render it; without a customer, a sample one. Every part is shown as
        escaped text; the HTML part is also shown rendered, in a sandboxed
        iframe loading `preview_html_view`."""
        result = self._preview(request, object_id)
        template, query, customer = result["template"], result["query"], result["customer"]
        html_url = reverse("admin:channels_template_preview_html", args=[template.pk])
        chosen = {"customer": query, "locale": result["locale"]}
        if any(chosen.values()):
            html_url += "?" + urlencode({k: v for k, v in chosen.items() if v})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Preview of {template.slug}",
            "subtitle": None,
            "original": template,
            "template_obj": template,
            "query": query,
            "locale": result["locale"],
            "locales": sorted(template.translations or {}),
            # Not "customer": the rendered template's own context has one too.
            "chosen_customer": customer,
            "sample": SAMPLE_CUSTOMER if customer is None and not result["problem"] else None,
            "problem": result["problem"],
            "render_error": result["render_error"],
            "parts": preview_parts(result["rendered"]) if result["rendered"] else [],
            "html_url": html_url,
        }
        return TemplateResponse(request, "admin/channels/template/preview.html", context)

    def preview_html_view(self, request, object_id):
        """The rendered HTML part alone, for the preview's iframe. Its own
        policy (PREVIEW_HTML_POLICY) forbids scripts even when the URL is
        opened directly; it may be framed by the admin only."""
        result = self._preview(request, object_id)
        rendered = result["rendered"]
        if rendered is None:
            response = HttpResponse(
                result["problem"] or result["render_error"],
                content_type="text/plain; charset=utf-8",
                status=422,
            )
        else:
            response = HttpResponse(rendered.get("html", ""), content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = PREVIEW_HTML_POLICY
        response["X-Frame-Options"] = "SAMEORIGIN"
        # The images of the email must not learn which customer is previewed.
        response["Referrer-Policy"] = "no-referrer"
        return response


class ReasonFilter(admin.SimpleListFilter):
    """The reason's code: a reason is "code" or "code: detail"."""

    title = "reason"
    parameter_name = "reason_code"
    CODES = [
        ("frequency_cap", "frequency_cap (over the cap)"),
        ("quiet_hours", "quiet_hours (held or past relevance)"),
        ("not_subscribed", "not_subscribed"),
        ("unsubscribed", "unsubscribed"),
        ("no_address", "no_address"),
        ("invalid_address", "invalid_address"),
        ("no_token", "no_token"),
        ("test_mode", "test_mode"),
        ("group_failed", "group_failed"),
        ("template_error", "template_error"),
        ("render_error", "render_error"),
        ("unknown_outcome", "unknown_outcome"),
    ]

    def lookups(self, request, model_admin):
        return self.CODES

    def queryset(self, request, queryset):
        code = self.value()
        if not code:
            return queryset
        return queryset.filter(Q(reason=code) | Q(reason__startswith=f"{code}:"))


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
    list_filter = ["status", "channel", ReasonFilter, "marketing", "is_test"]
    search_fields = ["customer__external_id", "template_slug", "reason", "=provider_id"]
    ordering = ["-id"]
    show_full_result_count = False
