"""The canvas on the Flow page: what its script is given (the version
shown, its errors, the pickers' catalogues, the endpoints, the editor's
words), its autosave endpoint and its statistics endpoint. Each endpoint
checks the permission it needs and answers JSON whatever happens.

Writes go through flows.lifecycle like every other door into the product.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from channels.models import Template
from customers.models import Channel, PromoPool, Segment
from flows.admin.common import json_endpoint, json_response, parse_period
from flows.admin.editor import POLL_SECONDS, TRANSIENT, conflict_response, editor_urls
from flows.document import DocumentError, timezone_names
from flows.document.validate import MAX_NODES
from flows.errors import DraftConflict, LifecycleError
from flows.lifecycle.drafts import save_draft
from flows.lifecycle.state import DRAFT_WRITABLE
from flows.models import Flow, FlowVersion
from flows.nodes import REGISTRY  # importing the package registers every kind
from flows.plain_language import stop_reason_text, with_texts
from flows.selectors.canvas_stats import canvas_stats
from flows.version_diff import diff_against_live
from maestra.admin_base import permitted_object
from maestra.api.errors import ApiError
from maestra.api.parsers import parse_json, read_body

# Larger catalogues than this are cut on the canvas (the picker keeps a value
# it does not list), so a page never carries megabytes of options.
CATALOG_LIMIT = 2000
MAX_DRAFT_BYTES = 2 * 1024 * 1024


# The flow editor's own words (canvas.js and the modules it imports), sent to
# the page with json_script so they go through Django's translation like the
# template's. {name}s are filled in by the script.
EDITOR_STRINGS = {
    "unsaved": _("Unsaved changes…"),
    "saving": _("Saving…"),
    "saved_valid": _("Saved draft v{version} · valid, ready to launch"),
    "saved_error": _("Saved draft v{version} · {count} error"),
    "saved_errors": _("Saved draft v{version} · {count} errors"),
    "not_saved": _("Not saved: {message}"),
    "json_invalid": _("The JSON is not valid: {message}"),
    "max_nodes": _("A flow has at most {max} nodes."),
    "hint_edit": _(
        "Select a node to edit its settings. Add one from the palette (drag it, or press it), "
        "and drag from a node's exit to another node to connect them."
    ),
    "hint_read": _("Select a node to see its settings."),
    "delete_node": _("Delete node"),
    "exit_title": _('Exit "{port}": drag to a node to connect'),
    "palette_title": _("Drag onto the canvas, or press to add a {kind} node"),
    "node_label": _("{kind} node {title} ({key})"),
    "added": _("{kind} node {key} added and selected."),
    "deleted": _("Node {key} deleted. Undo brings it back (Ctrl+Z)."),
    "undone": _("Undone."),
    "redone": _("Redone."),
    "tidied": _("Nodes laid out. Undo puts them back (Ctrl+Z)."),
    "node_error": _("{count} error"),
    "node_errors": _("{count} errors"),
    "invalid_one": _("{count} error: the flow cannot be launched until it is fixed."),
    "invalid_many": _("{count} errors: the flow cannot be launched until they are fixed."),
    "valid": _("No errors: the flow can be launched."),
    "problem_one": _("⚠ {count} problem"),
    "problem_many": _("⚠ {count} problems"),
    "no_problems": _("✓ No problems"),
    "fix_first": _("Fix the errors first (see Checks)"),
    "remove": _("remove"),
    "unknown": _("unknown"),
    "zoom": _("{percent} %"),
}


# --- The canvas ----------------------------------------------------------------


def canvas_config(*, flow: Flow, can_change: bool) -> dict:
    """What the canvas script needs, embedded in the Flow page as JSON: the
    version shown (the draft when there is one, else the live version,
    read-only), its errors, the pickers' catalogues and the endpoints."""
    draft = flow.draft
    version: FlowVersion | None = draft or flow.live_version
    if version is None:
        version = flow.versions.order_by("-number").first()
    editable = can_change and draft is not None and version == draft and flow.status in DRAFT_WRITABLE
    return {
        "flow": flow.pk,
        "status": flow.status,
        "document": version.document if version is not None else None,
        # Each error with its words for people (flows/plain_language.py); the code stays.
        "errors": with_texts(version.errors) if version is not None else [],
        "version": (
            {"number": version.number, "state": version.state, "is_test": version.is_test}
            if version
            else None
        ),
        "editable": editable,
        # Optimistic concurrency: sent back with each autosave (flows/admin/editor.py).
        "revision": version.revision if version is not None else 0,
        "diff": diff_against_live(flow=flow, version=version),
        "transient": flow.status in TRANSIENT,
        "pollSeconds": POLL_SECONDS,
        "hasDraft": draft is not None,
        "isLive": flow.is_live,
        "urls": {
            "save": reverse("admin:flows_flow_canvas_save", args=[flow.pk]),
            "stats": reverse("admin:flows_flow_canvas_stats", args=[flow.pk]),
            **editor_urls(flow=flow),
        },
        "kinds": [
            {"kind": kind, "label": node.label, "start": node.is_start} for kind, node in REGISTRY.items()
        ],
        "catalog": {
            "templates": list(
                Template.objects.order_by("slug").values("id", "slug", "name", "channel")[:CATALOG_LIMIT]
            ),
            "segments": list(Segment.objects.order_by("slug").values("slug", "name", "kind")[:CATALOG_LIMIT]),
            "pools": list(PromoPool.objects.order_by("slug").values("slug", "name")[:CATALOG_LIMIT]),
            "channels": [{"value": value, "label": label} for value, label in Channel.choices],
        },
        "maxNodes": MAX_NODES,
    }


@json_endpoint("POST")
def canvas_save_view(request, object_id, *, model_admin):
    """Autosave from the canvas: {"document": maestra.flow/1} -> save_draft.
    200 {"version", "status", "errors"}; a malformed document 400 with its
    problems; a flow whose draft cannot be written now 409 with the reason."""
    flow = permitted_object(model_admin, request, object_id, what="flow", permission="change")
    try:
        # The API's JSON reader: the same refusals (413 over the limit, 400
        # for what is not JSON or holds characters text cannot store).
        body = parse_json(read_body(request, limit=MAX_DRAFT_BYTES))
    except ApiError as refused:
        return json_response({"errors": refused.errors}, status=refused.status_code)
    document = body.get("document") if isinstance(body, dict) else None
    if not isinstance(document, dict):
        return json_response(
            {"errors": [{"field": "document", "message": 'Send {"document": {...}}.'}]}, status=400
        )
    if flow.draft is None:
        # The canvas never creates a draft behind the marketer's back: Edit does.
        return json_response(
            {"message": "This version is launched and read-only: press Edit to change it through a draft."},
            status=409,
        )
    revision = body.get("revision")
    if revision is not None and (not isinstance(revision, int) or isinstance(revision, bool) or revision < 0):
        return json_response(
            {"errors": [{"field": "revision", "message": "Send a whole number."}]}, status=400
        )
    try:
        draft = save_draft(flow=flow, document=document, user=request.user, expected_revision=revision)
    except DocumentError as error:
        return json_response({"errors": error.errors}, status=400)
    except DraftConflict as error:
        return conflict_response(error)
    except LifecycleError as error:
        return json_response({"message": error.message, "errors": error.errors}, status=409)
    flow = Flow.objects.select_related("live_version").get(pk=flow.pk)
    count = len(draft.errors)
    summary = [flow.get_status_display()]
    if flow.live_version is not None:
        summary.append(f"live v{flow.live_version.number}")
    summary.append(f"draft: {count} error{'s' if count != 1 else ''}" if count else "draft: valid")
    return json_response(
        {
            "version": draft.number,
            "status": flow.status,
            "summary": " · ".join(summary),
            "errors": with_texts(draft.errors),
            "saved_at": draft.updated_at,
            "revision": draft.revision,
            "diff": diff_against_live(flow=flow, version=draft),
        }
    )


@json_endpoint("GET")
def canvas_stats_view(request, object_id, *, model_admin):
    flow = permitted_object(model_admin, request, object_id, what="flow", permission="view")
    try:
        since, until = parse_period(request.GET)
    except ValueError as error:
        return json_response({"errors": [{"field": "period", "message": str(error)}]}, status=400)
    is_test = request.GET.get("test") in ("1", "true", "yes")
    data = canvas_stats(flow=flow, since=since, until=until, is_test=is_test)
    for node in (data.get("nodes") or {}).values():
        for stop in node.get("stops") or []:
            stop["text"] = stop_reason_text(stop.get("reason"))  # the code stays, as the tooltip
    return json_response(data)


# --- Versions on the canvas -----------------------------------------------------------


def version_canvas_context(*, flow: Flow, version: FlowVersion) -> dict[str, Any]:
    """What the version page needs to show `version` read-only on the canvas
    (FlowAdmin.version_view adds it to its context): the canvas
    configuration of that version, with what it changes against the live
    version, and the editor's words."""
    config = canvas_config(flow=flow, can_change=False)
    config.update(
        document=version.document,
        errors=with_texts(version.errors),
        version={"number": version.number, "state": version.state, "is_test": version.is_test},
        editable=False,
        revision=version.revision,
        diff=diff_against_live(flow=flow, version=version),
        isLive=False,
        transient=False,
        versionPage=True,
    )
    return {
        "canvas_config": config,
        "editor_strings": EDITOR_STRINGS,
        "timezones": timezone_names(),
        "canvas_transitions": [],
        "flow_tools": {"export_live": flow.live_version_id is not None},
        "original": flow,
        "is_nav_sidebar_enabled": False,
        "version_page": True,
    }
