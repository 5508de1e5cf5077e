"""The Flow admin page: state, the draft's document with its validation
errors, version history, the canvas (flows/admin/canvas.py, editor.py), the
lifecycle buttons (flows/admin/transitions.py), and the tools beside them:
Edit, Delete draft, Duplicate, Export, a version's own page.

Every change of a flow's state goes through flows/lifecycle/, so the admin
writes the same audit entries and starts the same launch task as the API.
"""

from __future__ import annotations

from functools import partial

from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from django.utils.timezone import now

from flows.admin import activity, audience, canvas, dashboard, editor, monitoring
from flows.admin.forms import FlowAddForm, FlowChangeForm
from flows.admin.rendering import (
    draft_state,
    lifecycle_error_message,
    render_edges_table,
    render_errors,
    render_nodes_table,
    when,
)
from flows.admin.transitions import NEEDS_DRAFT, TRANSITION_CONFIRM, LifecycleTransitionsMixin
from flows.document import dump_document, timezone_names
from flows.errors import LifecycleError
from flows.lifecycle.delete import can_delete, delete_draft, delete_flow
from flows.lifecycle.drafts import create_flow, duplicate_flow, edit_flow, export_document, save_draft
from flows.lifecycle.state import LIVE
from flows.models import Edge, Flow, FlowVersion, Node
from flows.selectors.versions import get_version, version_history


class DraftStateFilter(admin.SimpleListFilter):
    title = "draft"
    parameter_name = "draft"

    def lookups(self, request, model_admin):
        return [("yes", "Has a draft"), ("no", "No draft")]

    def queryset(self, request, queryset):
        has_draft = FlowVersion.objects.filter(state=FlowVersion.State.DRAFT).values("flow_id")
        if self.value() == "yes":
            return queryset.filter(pk__in=has_draft)
        if self.value() == "no":
            return queryset.exclude(pk__in=has_draft)
        return queryset


@admin.register(Flow)
class FlowAdmin(LifecycleTransitionsMixin, admin.ModelAdmin):
    # Our own template: the canvas with its lifecycle buttons, and Edit /
    # Delete draft / Duplicate / Export.
    change_form_template = "admin/flows/flow/change_form.html"
    form = FlowChangeForm
    add_form = FlowAddForm

    list_display = [
        "name",
        "status",
        "live_version_number",
        "draft_info",
        dashboard.entered_7d,
        dashboard.sent_7d,
        "owner",
        "updated_at",
    ]
    list_display_links = ["name"]
    list_select_related = ["live_version", "owner"]
    list_filter = ["status", DraftStateFilter]
    search_fields = ["name"]
    ordering = ["-updated_at"]
    actions = ["duplicate_flows"]

    readonly_fields = [
        "state_summary",
        "owner",
        "created_at",
        "updated_at",
        "draft_errors",
        "draft_nodes",
        "live_version_summary",
        "history",
    ]

    # --- Querysets ------------------------------------------------------------

    def _flow_queryset(self, request):
        drafts = FlowVersion.objects.filter(state=FlowVersion.State.DRAFT).only(
            "id", "flow_id", "number", "state", "errors"
        )
        return (
            super()
            .get_queryset(request)
            # The live version's document is not needed on a list page.
            .defer("live_version__document_json")
            # One query for every row's draft, however many rows.
            .prefetch_related(Prefetch("versions", queryset=drafts, to_attr="draft_versions"))
        )

    def get_changelist(self, request, **kwargs):
        # The list's figures of the last 7 days, in its own query (flows/admin/dashboard.py).
        request._flow_list_figures = True
        return super().get_changelist(request, **kwargs)

    def get_queryset(self, request):
        queryset = self._flow_queryset(request)
        if getattr(request, "_flow_list_figures", False):
            queryset = dashboard.with_list_figures(queryset)
        return queryset

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Deleting launched flows would delete their runs and history; a flow
        # is archived instead (see has_delete_permission).
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and not can_delete(obj):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj: Flow) -> None:
        delete_flow(flow=obj, user=request.user)

    def get_deleted_objects(self, objs, request):
        # Only a never-launched flow may be deleted (has_delete_permission); it
        # owns its versions and their graph, whose read-only admin pages refuse
        # deleting them one by one, which must not stop the flow going with them.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        owned = {str(model._meta.verbose_name) for model in (FlowVersion, Node, Edge)}
        return deleted, counts, perms_needed - owned, protected

    # --- List columns ---------------------------------------------------------

    @admin.display(description="live version", ordering="live_version__number")
    def live_version_number(self, obj: Flow) -> str:
        if obj.live_version is None:
            return "—"
        return f"v{obj.live_version.number}" + (" (test)" if obj.live_version.is_test else "")

    @admin.display(description="draft")
    def draft_info(self, obj: Flow) -> str:
        drafts = getattr(obj, "draft_versions", None)
        if drafts is None:
            drafts = [obj.draft] if obj.draft else []
        if not drafts:
            return "—"
        return f"v{drafts[0].number} · {draft_state(drafts[0]).removeprefix('draft: ')}"

    # --- Change page ----------------------------------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["name", "document", "document_file"]})]
        fieldsets = [
            (None, {"fields": ["name", "description", "state_summary", "owner", "created_at", "updated_at"]}),
        ]
        if obj.draft is not None:
            # The canvas edits the draft; the JSON stays here for pasting and review.
            fieldsets.append(
                (
                    "Draft document (JSON)",
                    {"classes": ["collapse"], "fields": ["draft_document", "draft_errors", "draft_nodes"]},
                )
            )
        if obj.live_version_id is not None:
            fieldsets.append(("Live version", {"fields": ["live_version_summary"]}))
        fieldsets.append(("Version history", {"fields": ["history"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return super().get_readonly_fields(request, obj)

    @admin.display(description="status")
    def state_summary(self, obj: Flow) -> str:
        text = obj.get_status_display()
        if obj.live_version_id is not None:
            text += f" · live v{obj.live_version.number}"
        state = draft_state(obj.draft)
        if state:
            text += f" · {state}"
        return text

    @admin.display(description="validation")
    def draft_errors(self, obj: Flow) -> SafeString:
        draft = obj.draft
        if draft is None:
            return mark_safe("")
        if not draft.errors:
            return mark_safe('<p class="flow-valid">The draft is valid: it can be launched.</p>')
        keys = {node.get("key") for node in draft.document.get("nodes", [])}
        return format_html(
            "<p>{} — the draft cannot be launched until {} fixed:</p>{}",
            draft_state(draft).removeprefix("draft: "),
            "they are" if len(draft.errors) != 1 else "it is",
            render_errors(draft.errors, node_keys=keys),
        )

    @admin.display(description="nodes")
    def draft_nodes(self, obj: Flow) -> SafeString:
        draft = obj.draft
        if draft is None:
            return mark_safe("")
        return render_nodes_table(draft.document, draft.errors)

    @admin.display(description="live version")
    def live_version_summary(self, obj: Flow) -> SafeString:
        version = obj.live_version
        if version is None:
            return mark_safe("—")
        url = reverse("admin:flows_flow_version", args=[obj.pk, version.number])
        return format_html(
            '<a href="{}">v{}{}</a>, launched {} — read-only: press Edit to change it through a draft.',
            url,
            version.number,
            " (test)" if version.is_test else "",
            version.launched_at.strftime("%Y-%m-%d %H:%M") if version.launched_at else "—",
        )

    @admin.display(description="versions")
    def history(self, obj: Flow) -> SafeString:
        rows = []
        for entry in version_history(flow=obj):
            number = entry["number"]
            url = reverse("admin:flows_flow_version", args=[obj.pk, number])
            rows.append(
                format_html(
                    '<tr><td><a href="{}">v{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
                    url,
                    number,
                    entry.get("state", ""),
                    when(entry.get("created_at")),
                    when(entry.get("launched_at")),
                    when(entry.get("stopped_at")),
                    entry.get("launched_by") or "",
                )
            )
        # Who did what to the flow: its entries in the audit log.
        audit_url = (
            reverse("admin:audit_auditentry_changelist")
            + "?"
            + urlencode({"subject_type": ContentType.objects.get_for_model(Flow).pk, "subject_id": obj.pk})
        )
        audit_link = format_html('<p><a href="{}">Audit log of this flow</a></p>', audit_url)
        if not rows:
            return format_html("—{}", audit_link)
        return format_html(
            '<table class="flow-history"><thead><tr><th>version</th><th>state</th><th>created</th>'
            "<th>launched</th><th>stopped</th><th>launched by</th></tr></thead><tbody>{}</tbody></table>{}",
            mark_safe("".join(rows)),
            audit_link,
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        flow = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if flow is not None:
            has_draft = flow.draft is not None
            can_change = self.has_change_permission(request, flow)
            extra_context["flow_tools"] = {
                "edit": can_change and not has_draft and flow.status in LIVE,
                "delete_draft": can_change and has_draft and flow.status in LIVE,
                "export_live": flow.live_version_id is not None,
                "export_draft": has_draft,
            }
            extra_context["flow_tools"]["delete"] = self.has_delete_permission(request, flow)
            extra_context["canvas_config"] = canvas.canvas_config(flow=flow, can_change=can_change)
            extra_context["canvas_transitions"] = (
                self._canvas_transitions(request, flow) if can_change else []
            )
            # The editor takes the whole width: no app list beside it.
            extra_context["is_nav_sidebar_enabled"] = False
            extra_context["editor_strings"] = canvas.EDITOR_STRINGS
            extra_context["timezones"] = timezone_names()
        return super().change_view(request, object_id, form_url, extra_context)

    def _canvas_transitions(self, request, flow: Flow) -> list[dict]:
        """The lifecycle buttons of the canvas. A never-launched draft gets
        Launch and Launch as test even while invalid: the canvas enables them
        as soon as an autosave comes back without errors."""
        shown = self.available_transitions(request, flow)
        if flow.status == Flow.Status.DRAFT and flow.draft is not None:
            shown = [("launch", "Launch"), ("start_test", "Launch as test"), *shown]
        return [
            {
                "name": name,
                "label": label,
                "needs_valid": name in NEEDS_DRAFT,
                # Posted to the transition URL, not with the change form: the
                # canvas autosaves the draft, so a lifecycle button only acts.
                "url": reverse("admin:flows_flow_transition", args=[flow.pk, name]),
                "confirm": TRANSITION_CONFIRM.get(name),
            }
            for name, label in shown
        ]

    # --- Saving ---------------------------------------------------------------

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        # A new flow is made by the lifecycle (version 1 as its draft, audit
        # entry), not by saving the form's instance.
        return create_flow(document=form.cleaned_data["flow_document"], user=request.user)

    def save_model(self, request, obj, form, change):
        if not change:
            return  # created in save_form
        obj.updated_at = now()
        # Never the status: it only moves through the lifecycle.
        obj.save(update_fields=["name", "description", "updated_at"])
        document = getattr(form, "document_to_save", None)
        if document is None:
            return
        try:
            draft = save_draft(flow=obj, document=document, user=request.user)
            request._flow_saved_draft = draft
        except LifecycleError as error:
            # Nothing of this save is kept: the admin's changeform_view runs in
            # one transaction, rolled back here.
            transaction.set_rollback(True)
            request._flow_save_refused = True
            self.message_user(request, lifecycle_error_message(error, flow=obj), messages.ERROR)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        if "_addanother" in request.POST or "_popup" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(request, format_html("The flow “{}” was created.", obj.name), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:flows_flow_change", args=[obj.pk]))

    def response_change(self, request, obj):
        if getattr(request, "_flow_save_refused", False):
            return HttpResponseRedirect(request.path)
        draft = getattr(request, "_flow_saved_draft", None)
        if draft is not None and not request.POST.get(self.transition_param):
            # Stay on the page: the marketer wants to see the draft's validation.
            level = messages.SUCCESS if draft.is_valid else messages.WARNING
            self.message_user(request, f"Draft v{draft.number} saved ({draft_state(draft)}).", level)
            return HttpResponseRedirect(request.path)
        # A lifecycle button pressed with the form: LifecycleTransitionsMixin.
        return super().response_change(request, obj)

    # --- Extra views: edit, delete draft, duplicate, export, version -------------

    def get_urls(self):
        wrap = self.admin_site.admin_view

        def view(function):
            return wrap(partial(function, model_admin=self))

        def flow_page(suffix: str, function, name: str):
            """A page of one flow: <id>/<suffix>, named flows_flow_<name>."""
            return path(f"<path:object_id>/{suffix}", function, name=f"flows_flow_{name}")

        return [
            # Fixed paths first: "<path:object_id>/" would swallow them.
            path("monitoring/", view(monitoring.monitoring_view), name="flows_monitoring"),
            *dashboard.urls(view),
            path("activity/", view(activity.activity_view), name="flows_customer_activity_search"),
            path("activity/<int:customer_id>/", view(activity.activity_view), name="flows_customer_activity"),
            flow_page("canvas/draft/", view(canvas.canvas_save_view), "canvas_save"),
            flow_page("canvas/stats/", view(canvas.canvas_stats_view), "canvas_stats"),
            *editor.urls(view),
            flow_page("audience/", view(audience.audience_preview_view), "audience"),
            flow_page("edit/", wrap(self.edit_view), "edit"),
            flow_page("delete-draft/", wrap(self.delete_draft_view), "delete_draft"),
            flow_page("duplicate/", wrap(self.duplicate_view), "duplicate"),
            flow_page("export/", wrap(self.export_view), "export"),
            flow_page("versions/<int:number>/", wrap(self.version_view), "version"),
            *super().get_urls(),
        ]

    def _get_flow(self, request, object_id) -> Flow:
        flow = self.get_object(request, object_id)
        if flow is None:
            raise Http404("No such flow")
        return flow

    def _require_change(self, request, flow: Flow) -> None:
        if not self.has_change_permission(request, flow):
            raise PermissionDenied

    def _back_to(self, flow: Flow) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:flows_flow_change", args=[flow.pk]))

    def _run(self, request, flow: Flow, service, **kwargs):
        """Call a lifecycle service; a refusal becomes an error message."""
        try:
            return service(flow=flow, user=request.user, **kwargs), True
        except LifecycleError as error:
            self.message_user(request, lifecycle_error_message(error, flow=flow), messages.ERROR)
            return None, False

    def edit_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponse(status=405)
        flow = self._get_flow(request, object_id)
        self._require_change(request, flow)
        had_draft = flow.draft is not None
        draft, done = self._run(request, flow, edit_flow)
        if done:
            message = (
                "The draft is open." if had_draft else f"Draft v{draft.number} created from the live version."
            )
            self.message_user(request, message, messages.SUCCESS)
        return self._back_to(flow)

    def delete_draft_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponse(status=405)
        flow = self._get_flow(request, object_id)
        self._require_change(request, flow)
        _result, done = self._run(request, flow, delete_draft)
        if done:
            self.message_user(request, "The draft was deleted.", messages.SUCCESS)
        return self._back_to(flow)

    def duplicate_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponse(status=405)
        flow = self._get_flow(request, object_id)
        if not self.has_add_permission(request):
            raise PermissionDenied
        copy, done = self._run(request, flow, duplicate_flow)
        if not done:
            return self._back_to(flow)
        self.message_user(request, format_html("Duplicated as “{}”.", copy.name), messages.SUCCESS)
        return self._back_to(copy)

    def export_view(self, request, object_id):
        flow = self._get_flow(request, object_id)
        version = request.GET.get("version", "live")
        if version not in ("live", "draft"):
            try:
                version = int(version)
            except ValueError:
                self.message_user(request, f"Unknown version {version!r}.", messages.ERROR)
                return self._back_to(flow)
        try:
            document = export_document(flow=flow, version=version)
        except LifecycleError as error:
            self.message_user(request, lifecycle_error_message(error, flow=flow), messages.ERROR)
            return self._back_to(flow)
        label = version if isinstance(version, str) else f"v{version}"
        filename = f"flow-{flow.pk}-{slugify(flow.name) or 'flow'}-{label}.json"
        response = HttpResponse(dump_document(document, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def version_view(self, request, object_id, number):
        flow = self._get_flow(request, object_id)
        try:
            version = get_version(flow=flow, number=number)
        except (LifecycleError, FlowVersion.DoesNotExist):
            raise Http404(f"Flow {flow.pk} has no version {number}") from None
        if version is None:
            raise Http404(f"Flow {flow.pk} has no version {number}")
        document = version.document
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{flow.name} — version {version.number}",
            "subtitle": None,
            "flow": flow,
            "original": flow,
            "version": version,
            "document_text": dump_document(document, indent=2),
            "nodes_table": render_nodes_table(document, version.errors),
            "edges_table": render_edges_table(document),
            "errors_list": render_errors(
                version.errors, node_keys={n.get("key") for n in document.get("nodes", [])}
            )
            if version.errors
            else "",
            "export_url": reverse("admin:flows_flow_export", args=[flow.pk])
            + "?"
            + urlencode({"version": version.number}),
            "change_url": reverse("admin:flows_flow_change", args=[flow.pk]),
            # The version drawn read-only on the canvas (issue #14, item 6).
            **canvas.version_canvas_context(flow=flow, version=version),
        }
        return TemplateResponse(request, "admin/flows/flow/version.html", context)

    # --- List action ------------------------------------------------------------

    @admin.action(description="Duplicate selected flows", permissions=["add"])
    def duplicate_flows(self, request, queryset):
        copies = 0
        for flow in queryset:
            _copy, done = self._run(request, flow, duplicate_flow)
            copies += done
        if copies:
            self.message_user(request, f"{copies} flow(s) duplicated.", messages.SUCCESS)
