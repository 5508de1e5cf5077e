"""Admin for flows: the Flow page (state, transition buttons, the draft's
document with its validation errors, version history) and read-only pages of
what the engine records.

Every change of a flow's state goes through flows/lifecycle.py, so the admin
writes the same audit entries and starts the same launch task as the API:
django-fsm-2's FSMAdminMixin draws the transition buttons, and
`_apply_fsm_transition` below hands the click to the service instead of
calling the model's transition method.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import partial

from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _
from django_fsm import TransitionNotAllowed
from django_fsm.admin import FSMAdminMixin

from customers.admin import CustomerAdmin, ReadOnlyAdminMixin
from flows import admin_views, audience_admin, dashboard, editor_views, lifecycle, privacy_admin
from flows.document import dump_document, timezone_names
from flows.forms import FlowAddForm, FlowChangeForm
from flows.lifecycle import LifecycleError
from flows.models import (
    ABAssignment,
    Edge,
    Flow,
    FlowVersion,
    LaunchRecord,
    LimitationCounter,
    LimitationGrant,
    Node,
    NodePass,
    NodeStat,
    Run,
)
from flows.selectors import get_version, version_history

# The admin's transition buttons and the service each one runs. A transition
# not listed here (the ones the system performs) is refused.
TRANSITION_SERVICES = {
    "launch": lifecycle.launch_flow,
    "start_test": lifecycle.start_test,
    "stop_test": lifecycle.stop_test,
    "pause": lifecycle.pause_flow,
    "resume": lifecycle.resume_flow,
    "archive": lifecycle.archive_flow,
}

TRANSITION_DONE = {
    "launch": "Launch started: the draft goes live as soon as the worker (or flows_tick) finishes it.",
    "start_test": "The draft runs as a test version.",
    "stop_test": "The test is stopped; a new draft holds its graph.",
    "pause": "The flow is paused: no new runs; waiting runs stay where they are.",
    "resume": "The flow is active again.",
    "archive": "The flow is archived; its runs in flight were stopped.",
}


# Transitions that cannot be undone ask first, in a dialog on the canvas page.
TRANSITION_CONFIRM = {
    "archive": {
        "title": _("Archive this flow?"),
        "message": _(
            "Archiving is permanent: runs in progress stop at once, and the flow can never be "
            "launched or resumed again. Its statistics and history stay."
        ),
        "action": _("Archive the flow"),
    },
}


def node_anchor(key: str) -> str:
    return f"node-{key}"


def render_errors(errors: list[dict], *, base_url: str = "", node_keys: set[str] | None = None) -> SafeString:
    """A validation error list; an error of a node links to its row in the
    nodes table (#node-<key>)."""

    def label(error: dict) -> SafeString:
        node = error.get("node")
        field = error.get("field") or ""
        if node and (node_keys is None or node in node_keys):
            where = format_html('<a href="{}#{}">{}</a>', base_url, node_anchor(node), node)
        elif node:
            where = format_html("{}", node)
        else:
            where = mark_safe("flow")
        if field:
            where = format_html("{} · {}", where, field)
        return format_html("{}: {}", where, error.get("message", ""))

    return format_html(
        '<ul class="flow-errors">{}</ul>', format_html_join("", "<li>{}</li>", ((label(e),) for e in errors))
    )


def lifecycle_error_message(error: LifecycleError, *, flow: Flow | None = None) -> SafeString:
    if not error.errors:
        return format_html("{}", error.message)
    base_url = reverse("admin:flows_flow_change", args=[flow.pk]) if flow is not None else ""
    return format_html("{}{}", error.message, render_errors(error.errors, base_url=base_url))


def draft_state(draft: FlowVersion | None) -> str:
    if draft is None:
        return ""
    count = len(draft.errors)
    if not count:
        return "draft: valid"
    return f"draft: {count} error{'s' if count != 1 else ''}"


def render_nodes_table(document: dict, errors: list[dict]) -> SafeString:
    """The document's nodes, one row each with id="node-<key>" so error links
    land on it; a node with errors is highlighted and lists them."""
    by_node: dict[str, list[dict]] = defaultdict(list)
    for error in errors:
        if error.get("node"):
            by_node[error["node"]].append(error)
    rows = []
    seen: set[str] = set()
    for node in document.get("nodes", []):
        key = node.get("key", "")
        node_errors = by_node.get(key, [])
        # A repeated key is a validation error; only its first row gets the anchor.
        row_id = format_html(' id="{}"', node_anchor(key)) if key not in seen else ""
        seen.add(key)
        rows.append(
            format_html(
                '<tr{}{}><td><strong>{}</strong></td><td>{}</td><td>{}</td><td><pre class="flow-config">{}</pre></td><td>{}</td></tr>',
                row_id,
                mark_safe(' class="flow-node-error"') if node_errors else "",
                key,
                node.get("kind", ""),
                node.get("title", ""),
                json.dumps(node.get("config", {}), indent=2, ensure_ascii=False),
                format_html_join(
                    "",
                    "<div>{}: {}</div>",
                    ((e.get("field") or "node", e.get("message", "")) for e in node_errors),
                ),
            )
        )
    if not rows:
        return mark_safe("<p>No nodes yet.</p>")
    return format_html(
        '<table class="flow-nodes"><thead><tr><th>key</th><th>kind</th><th>title</th><th>config</th>'
        "<th>errors</th></tr></thead><tbody>{}</tbody></table>",
        mark_safe("".join(rows)),
    )


def render_edges_table(document: dict) -> SafeString:
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (edge.get("from", ""), edge.get("port", "next"), edge.get("to", ""))
            for edge in document.get("edges", [])
        ),
    )
    if not rows:
        return mark_safe("<p>No edges.</p>")
    return format_html(
        '<table class="flow-edges"><thead><tr><th>from</th><th>port</th><th>to</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        rows,
    )


class NodeKindFilter(admin.SimpleListFilter):
    """The registered node kinds, not a SELECT DISTINCT over a table that
    grows with every run (Django's default filter for a plain CharField)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        from flows.nodes import REGISTRY  # importing the package registers every kind

        return [(kind, node.label) for kind, node in sorted(REGISTRY.items())]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(kind=self.value())
        return queryset


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
class FlowAdmin(FSMAdminMixin, admin.ModelAdmin):
    fsm_fields = ["status"]
    # Our own template: it draws the transition buttons itself (django_fsm is
    # not an installed app, so its templates are not on the search path) and
    # adds Edit / Delete draft / Duplicate / Export.
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
        # The list's figures of the last 7 days, in its own query (flows/dashboard.py).
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
        if obj is not None and not lifecycle.can_delete(obj):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj: Flow) -> None:
        lifecycle.delete_flow(flow=obj, user=request.user)

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
                    _when(entry.get("created_at")),
                    _when(entry.get("launched_at")),
                    _when(entry.get("stopped_at")),
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
                "edit": can_change and not has_draft and flow.status in lifecycle.LIVE,
                "delete_draft": can_change and has_draft and flow.status in lifecycle.LIVE,
                "export_live": flow.live_version_id is not None,
                "export_draft": has_draft,
            }
            extra_context["flow_tools"]["delete"] = self.has_delete_permission(request, flow)
            extra_context["canvas_config"] = admin_views.canvas_config(flow=flow, can_change=can_change)
            extra_context["canvas_transitions"] = (
                self._canvas_transitions(request, flow) if can_change else []
            )
            # The editor takes the whole width: no app list beside it.
            extra_context["is_nav_sidebar_enabled"] = False
            extra_context["editor_strings"] = admin_views.EDITOR_STRINGS
            extra_context["timezones"] = timezone_names()
        return super().change_view(request, object_id, form_url, extra_context)

    def _get_fsm_extra_context(self, *, request, obj):
        # Launching needs a draft: a live flow without one shows no Launch button.
        has_draft = obj is not None and obj.draft is not None
        order = list(TRANSITION_SERVICES)
        for block in super()._get_fsm_extra_context(request=request, obj=obj):
            shown = [
                t
                for t in block.available_transitions
                if t.name in TRANSITION_SERVICES and (has_draft or t.name not in ("launch", "start_test"))
            ]
            shown.sort(key=lambda t: order.index(t.name))
            for transition in shown:
                if transition.name == "launch" and obj.is_live:
                    transition.label = "Launch draft"
            block.available_transitions = shown
            if shown:
                yield block

    def _canvas_transitions(self, request, flow: Flow) -> list[dict]:
        """The lifecycle buttons of the canvas. A never-launched draft gets
        Launch and Launch as test even while invalid: the canvas enables them
        as soon as an autosave comes back without errors."""
        shown = [
            (t.name, t.label)
            for block in self._get_fsm_extra_context(request=request, obj=flow)
            for t in block.available_transitions
        ]
        if flow.status == Flow.Status.DRAFT and flow.draft is not None:
            shown = [("launch", "Launch"), ("start_test", "Launch as test"), *shown]
        return [
            {
                "name": name,
                "label": label,
                "needs_valid": name in ("launch", "start_test"),
                # Posted to the transition URL, not with the change form: the
                # canvas autosaves the draft, so a lifecycle button only acts.
                "url": reverse("admin:flows_flow_transition", args=[flow.pk, name]),
                "confirm": TRANSITION_CONFIRM.get(name),
            }
            for name, label in shown
        ]

    @staticmethod
    def get_fsm_block_label(fsm_field_name: str) -> str:
        return "Status"

    # --- Saving ---------------------------------------------------------------

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        # A new flow is made by the lifecycle (version 1 as its draft, audit
        # entry), not by saving the form's instance.
        return lifecycle.create_flow(document=form.cleaned_data["flow_document"], user=request.user)

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
            draft = lifecycle.save_draft(flow=obj, document=document, user=request.user)
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
        transition_name = request.POST.get(self.fsm_post_param)
        draft = getattr(request, "_flow_saved_draft", None)
        if draft is not None and not transition_name:
            # Stay on the page: the marketer wants to see the draft's validation.
            level = messages.SUCCESS if draft.is_valid else messages.WARNING
            self.message_user(request, f"Draft v{draft.number} saved ({draft_state(draft)}).", level)
            return HttpResponseRedirect(request.path)
        if transition_name and transition_name not in TRANSITION_SERVICES:
            # Checked before the mixin looks the name up on the model.
            self.message_user(request, f"“{transition_name}” cannot be done from the admin.", messages.ERROR)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    # --- Transitions through the lifecycle services -----------------------------

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None) -> bool:
        service = TRANSITION_SERVICES.get(transition_name)
        if service is None:
            self.message_user(request, f"“{transition_name}” cannot be done from the admin.", messages.ERROR)
            return False
        try:
            service(flow=obj, user=request.user)
        except LifecycleError as error:
            self.message_user(request, lifecycle_error_message(error, flow=obj), messages.ERROR)
            return False
        except TransitionNotAllowed as error:
            self.message_user(request, str(error), messages.ERROR)
            return False
        self.message_user(request, TRANSITION_DONE[transition_name], messages.SUCCESS)
        return True

    def _execute_fsm_transition(self, *, transition_func, request, kwargs=None) -> None:
        # Never call a transition method directly from the admin: it would skip
        # the audit log and the launch task. _apply_fsm_transition above is the
        # only way in; reaching this is a programming error.
        raise RuntimeError("Flow transitions go through flows.lifecycle")

    def fsm_transition_view(self, request, object_id, transition_name, **kwargs):
        # No transition of a Flow takes a form, so this URL only applies one (POST).
        flow = self.get_object(request, object_id)
        if flow is None:
            raise Http404
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:flows_flow_change", args=[flow.pk]))
        self._require_change(request, flow)
        self._apply_fsm_transition(obj=flow, transition_name=transition_name, request=request)
        return HttpResponseRedirect(reverse("admin:flows_flow_change", args=[flow.pk]))

    # --- Extra views: edit, delete draft, duplicate, export, version -------------

    def get_urls(self):
        wrap = self.admin_site.admin_view

        def view(function):
            return wrap(partial(function, model_admin=self))

        return [
            # Fixed paths first: "<path:object_id>/" would swallow them.
            path("monitoring/", view(admin_views.monitoring_view), name="flows_monitoring"),
            *dashboard.urls(view),
            path("activity/", view(admin_views.activity_view), name="flows_customer_activity_search"),
            path(
                "activity/<int:customer_id>/", view(admin_views.activity_view), name="flows_customer_activity"
            ),
            path(
                "<path:object_id>/canvas/draft/",
                view(admin_views.canvas_save_view),
                name="flows_flow_canvas_save",
            ),
            path(
                "<path:object_id>/canvas/stats/",
                view(admin_views.canvas_stats_view),
                name="flows_flow_canvas_stats",
            ),
            *editor_views.urls(view),
            path(
                "<path:object_id>/audience/",
                view(audience_admin.audience_preview_view),
                name="flows_flow_audience",
            ),
            path("<path:object_id>/edit/", wrap(self.edit_view), name="flows_flow_edit"),
            path(
                "<path:object_id>/delete-draft/", wrap(self.delete_draft_view), name="flows_flow_delete_draft"
            ),
            path("<path:object_id>/duplicate/", wrap(self.duplicate_view), name="flows_flow_duplicate"),
            path("<path:object_id>/export/", wrap(self.export_view), name="flows_flow_export"),
            path(
                "<path:object_id>/versions/<int:number>/",
                wrap(self.version_view),
                name="flows_flow_version",
            ),
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
        draft, done = self._run(request, flow, lifecycle.edit_flow)
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
        _result, done = self._run(request, flow, lifecycle.delete_draft)
        if done:
            self.message_user(request, "The draft was deleted.", messages.SUCCESS)
        return self._back_to(flow)

    def duplicate_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponse(status=405)
        flow = self._get_flow(request, object_id)
        if not self.has_add_permission(request):
            raise PermissionDenied
        copy, done = self._run(request, flow, lifecycle.duplicate_flow)
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
            document = lifecycle.export_document(flow=flow, version=version)
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
            **editor_views.version_canvas_context(flow=flow, version=version),
        }
        return TemplateResponse(request, "admin/flows/flow/version.html", context)

    # --- List action ------------------------------------------------------------

    @admin.action(description="Duplicate selected flows", permissions=["add"])
    def duplicate_flows(self, request, queryset):
        copies = 0
        for flow in queryset:
            _copy, done = self._run(request, flow, lifecycle.duplicate_flow)
            copies += done
        if copies:
            self.message_user(request, f"{copies} flow(s) duplicated.", messages.SUCCESS)


def _when(value) -> str:
    if not value:
        return "—"
    if isinstance(value, str):
        return value
    return value.strftime("%Y-%m-%d %H:%M")


# --- Read-only pages of versions and of what the engine records ----------------


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
class NodeAdmin(dashboard.InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["key", "kind", "title", "version"]
    list_select_related = ["version__flow"]
    list_filter = [NodeKindFilter]
    search_fields = ["key", "title", "version__flow__name"]
    show_full_result_count = False


@admin.register(Edge)
class EdgeAdmin(dashboard.InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["from_key", "port", "to_key", "version"]
    list_select_related = ["version__flow"]
    search_fields = ["from_key", "to_key", "version__flow__name"]
    show_full_result_count = False


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
class NodePassAdmin(dashboard.InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "run", "node_key", "kind", "pass_no", "at", "port", "exited_at", "stop_reason"]
    list_select_related = ["run"]
    list_filter = [NodeKindFilter]
    search_fields = ["=run__id", "=node_key"]
    ordering = ["-id"]
    show_full_result_count = False


@admin.register(LaunchRecord)
class LaunchRecordAdmin(dashboard.InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["flow", "customer", "launches", "first_launched_at", "last_step_at"]
    list_select_related = ["flow", "customer"]
    list_filter = ["flow"]
    search_fields = ["=customer__external_id", "customer__email"]
    ordering = ["-id"]
    show_full_result_count = False


@admin.register(LimitationCounter)
class LimitationCounterAdmin(dashboard.InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["flow", "node_key", "signature", "window_start", "used", "alerted"]
    list_select_related = ["flow"]
    list_filter = ["flow", "alerted"]
    search_fields = ["node_key", "flow__name"]
    ordering = ["-window_start"]


@admin.register(LimitationGrant)
class LimitationGrantAdmin(dashboard.InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "counter_label", "run", "pass_no", "state", "granted_at"]
    list_select_related = ["counter__flow", "run"]
    list_filter = ["state"]
    ordering = ["-id"]
    show_full_result_count = False

    @admin.display(description="counter")
    def counter_label(self, obj: LimitationGrant) -> str:
        counter = obj.counter
        return f"{counter.flow.name} · {counter.node_key} · {counter.window_start:%Y-%m-%d %H:%M}"


@admin.register(ABAssignment)
class ABAssignmentAdmin(dashboard.InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["flow", "node_key", "customer", "variant", "assigned_at"]
    list_select_related = ["flow", "customer"]
    list_filter = ["flow"]
    search_fields = ["=customer__external_id", "node_key"]
    ordering = ["-id"]
    show_full_result_count = False


@admin.register(NodeStat)
class NodeStatAdmin(dashboard.InternalTableMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["flow", "node_key", "hour", "metric", "count", "is_test"]
    list_select_related = ["flow"]
    list_filter = ["is_test", "flow"]
    search_fields = ["node_key", "metric"]
    ordering = ["-hour"]
    show_full_result_count = False


# Erase / export on the customer list: the services touch runs (flows'
# records) and customers never imports flows, so they are attached from here.
privacy_admin.attach_to(CustomerAdmin)

# HOOK(ab-winner): the recorded A/B winners' admin (flows/ab_winner_admin.py).
from flows import ab_winner_admin  # noqa: E402, F401
