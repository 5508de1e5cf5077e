"""The marketer's pages beside the Flow admin: the canvas's JSON endpoints
(autosave of the draft, run statistics), the monitoring page and customer
activity. FlowAdmin.get_urls wires them; each view checks the model
permissions it needs, so a marketer sees them and nobody else by accident.

Writes go through flows.lifecycle like every other door into the product.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, time, timedelta
from functools import wraps
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from channels.models import Message, Template
from customers.models import Channel, Customer, PromoPool, Segment
from flows import lifecycle
from flows.alerts import current_alerts
from flows.document import DocumentError
from flows.editor_views import POLL_SECONDS, TRANSIENT, conflict_response, editor_urls
from flows.models import Flow, FlowVersion, NodePass, Run
from flows.plain_language import stop_reason_text, with_texts
from flows.selectors.activity import customer_runs, describe_runs
from flows.selectors.canvas_stats import canvas_stats
from flows.validation import MAX_NODES
from flows.version_diff import diff_against_live
from maestra.api.errors import ApiError
from maestra.api.parsers import parse_json, read_body

log = logging.getLogger(__name__)

# Steps that fail on the spot stop their run with one of these reasons
# (flows/actions.py, channels/outbox.py ON_THE_SPOT_REASONS).
STEP_FAILURE_REASONS = {
    "promo_pool_empty": "The promo pool had no free code left.",
    "template_missing": "The template does not exist (any more).",
    "template_channel_mismatch": "The template belongs to another channel.",
    "template_error": "The template does not compile or asks a filter for too much.",
    "render_error": "The message could not be rendered (past the render budget, or data it cannot handle).",
    "customer_missing": "The customer no longer exists.",
    # flows/engine.py: an unexpected error while processing the run alone (Run.error).
    "engine_error": "The engine could not process this run.",
}
# Larger catalogues than this are cut on the canvas (the picker keeps a value
# it does not list), so a page never carries megabytes of options.
CATALOG_LIMIT = 2000
MAX_DRAFT_BYTES = 2 * 1024 * 1024
PAGE_SIZE = 50
ACTIVITY_PAGE_SIZE = 20
DEFAULT_STATS_DAYS = 7


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


def json_response(data: Any, *, status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, encoder=DjangoJSONEncoder, safe=False)


def json_endpoint(*methods: str):
    """The canvas's endpoints answer JSON whatever happens, as the API does:
    a wrong method is a JSON 405, and a bug is logged with its traceback and
    answered with a JSON 500 — never Django's HTML pages, which the canvas
    script cannot show."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = json_response(
                    {"errors": [{"field": "", "message": f"Use {' or '.join(methods)}."}]}, status=405
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except PermissionDenied:
                return json_response({"message": "You may not do this."}, status=403)
            except Exception:
                log.exception("Unhandled error in %s", view.__name__)
                return json_response(
                    {"errors": [{"field": "", "message": "Internal error; it has been logged."}]}, status=500
                )

        return wrapper

    return decorate


def _require(request, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


# --- The canvas ----------------------------------------------------------------


def canvas_config(*, flow: Flow, can_change: bool) -> dict:
    """What the canvas script needs, embedded in the Flow page as JSON: the
    version shown (the draft when there is one, else the live version,
    read-only), its errors, the pickers' catalogues and the endpoints."""
    draft = flow.draft
    version: FlowVersion | None = draft or flow.live_version
    if version is None:
        version = flow.versions.order_by("-number").first()
    editable = (
        can_change and draft is not None and version == draft and flow.status in lifecycle.DRAFT_WRITABLE
    )
    from flows.nodes import REGISTRY  # importing the package registers every kind

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
        # Optimistic concurrency: sent back with each autosave (flows/editor_views.py).
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
    flow = model_admin.get_object(request, object_id)
    if flow is None:
        return json_response({"message": "No such flow."}, status=404)
    if not model_admin.has_change_permission(request, flow):
        return json_response({"message": "You may not do this."}, status=403)
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
        draft = lifecycle.save_draft(
            flow=flow, document=document, user=request.user, expected_revision=revision
        )
    except DocumentError as error:
        return json_response({"errors": error.errors}, status=400)
    except lifecycle.DraftConflict as error:
        return conflict_response(error)
    except lifecycle.LifecycleError as error:
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


def parse_period(params, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """`from`/`to` as dates (whole days in the current time zone, `to`
    included) or ISO datetimes; default: the last 7 days up to now. Raises
    ValueError with a message for people."""
    now = now or timezone.now()

    def read(name: str, *, end: bool) -> datetime | None:
        text = (params.get(name) or "").strip()
        if not text:
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            moment = datetime.combine(day + timedelta(days=1) if end else day, time())
            return timezone.make_aware(moment)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a date (YYYY-MM-DD) or an ISO datetime") from None
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment)

    try:
        until = read("to", end=True) or now
        since = read("from", end=False) or until - timedelta(days=DEFAULT_STATS_DAYS)
    except OverflowError:
        # The first or last day there is (0001-01-01, 9999-12-31) has no day around it.
        raise ValueError("the period lies outside the calendar's range (years 1 to 9999)") from None
    if since >= until:
        raise ValueError("from must be before to")
    return since, until


@json_endpoint("GET")
def canvas_stats_view(request, object_id, *, model_admin):
    flow = model_admin.get_object(request, object_id)
    if flow is None:
        return json_response({"message": "No such flow."}, status=404)
    if not model_admin.has_view_permission(request, flow):
        return json_response({"message": "You may not do this."}, status=403)
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


# --- Monitoring ----------------------------------------------------------------


def monitoring_view(request, *, model_admin):
    """Failed and not-sent messages and failed steps, with their errors,
    filterable by flow, channel, reason and period."""
    _require(request, "channels.view_message", "flows.view_run")
    try:
        since, until = parse_period(request.GET)
        period_error = ""
    except ValueError as error:
        since, until = parse_period({})
        period_error = str(error)
    flow_id = _int_or_none(request.GET.get("flow"))
    channel = request.GET.get("channel") or ""
    reason = (request.GET.get("reason") or "").strip()
    show = request.GET.get("show") or "messages"
    if show not in ("messages", "steps"):
        show = "messages"

    messages_qs = Message.objects.filter(
        status__in=[Message.Status.FAILED, Message.Status.NOT_SENT],
        created_at__gte=since,
        created_at__lt=until,
    )
    steps_qs = Run.objects.filter(
        status=Run.Status.STOPPED,
        stop_reason__in=list(STEP_FAILURE_REASONS),
        ended_at__gte=since,
        ended_at__lt=until,
    )
    if flow_id is not None:
        messages_qs = messages_qs.filter(flow_id=flow_id)
        steps_qs = steps_qs.filter(flow_id=flow_id)
    if channel:
        messages_qs = messages_qs.filter(channel=channel)
    if reason:
        # Reasons are "code" or "code: detail": filter on the code.
        messages_qs = messages_qs.filter(Q(reason=reason) | Q(reason__startswith=f"{reason}:"))
        steps_qs = steps_qs.filter(stop_reason=reason)

    if show == "messages":
        page = Paginator(
            messages_qs.select_related("customer")
            .order_by("-created_at", "-id")
            .only(
                "id",
                "created_at",
                "status",
                "reason",
                "channel",
                "template_slug",
                "flow_id",
                "node_key",
                "response_status",
                "response_body",
                "is_test",
                "customer__external_id",
                "customer__email",
            ),
            PAGE_SIZE,
        ).get_page(request.GET.get("page"))
        rows = list(page)
        flow_names = dict(
            Flow.objects.filter(pk__in={m.flow_id for m in rows if m.flow_id}).values_list("pk", "name")
        )
        for message in rows:
            message.flow_name = flow_names.get(message.flow_id, "")
    else:
        page = Paginator(
            steps_qs.select_related("customer", "flow")
            .order_by("-ended_at", "-id")
            .only(
                "id",
                "ended_at",
                "stop_reason",
                "error",
                "node_key",
                "is_test",
                "flow__name",
                "customer__external_id",
                "customer__email",
            ),
            PAGE_SIZE,
        ).get_page(request.GET.get("page"))
        rows = list(page)
        _attach_step_errors(rows)

    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Monitoring",
        "subtitle": None,
        "show": show,
        "page": page,
        "rows": rows,
        "since": since,
        "until": until,
        "period_error": period_error,
        "filters": {
            "flow": flow_id,
            "channel": channel,
            "reason": reason,
            "from": request.GET.get("from", ""),
            "to": request.GET.get("to", ""),
        },
        "flows": Flow.objects.order_by("name").values_list("pk", "name"),
        "channels": Channel.choices,
        "step_reasons": STEP_FAILURE_REASONS,
        "message_count": messages_qs.count(),
        "step_count": steps_qs.count(),
        "query_without_page": _query_without(request.GET, "page"),
        "query_without_show": _query_without(request.GET, "page", "show"),
        "alerts": current_alerts(),
    }
    return TemplateResponse(request, "admin/flows/monitoring.html", context)


def _attach_step_errors(runs: list[Run]) -> None:
    """The error text of each failed step: the failed message's reason where a
    send failed on the spot, the error the engine kept on the run
    (engine_error), else what the reason code means. Two queries for the page."""
    run_ids = [run.pk for run in runs]
    details = {}
    for run_id, node_key, text in (
        Message.objects.filter(run_id__in=run_ids, status=Message.Status.FAILED)
        .order_by("id")
        .values_list("run_id", "node_key", "reason")
    ):
        details.setdefault(run_id, (node_key, text))
    stopped_at = {}
    for run_id, node_key in (
        NodePass.objects.filter(run_id__in=run_ids).exclude(stop_reason="").values_list("run_id", "node_key")
    ):
        stopped_at[run_id] = node_key
    for run in runs:
        node_key, text = details.get(run.pk, (None, ""))
        run.failed_node = stopped_at.get(run.pk) or node_key or run.node_key
        run.error_text = text or run.error or STEP_FAILURE_REASONS.get(run.stop_reason, run.stop_reason)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _query_without(params, *names: str) -> str:
    query = params.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


# --- Customer activity ------------------------------------------------------------


def search_customers(*, query: str, limit: int = 50) -> list[Customer]:
    """Customers whose external id, email or phone is the query (exact, the
    indexed columns first), else whose email or name contains it."""
    query = query.strip()
    if not query:
        return []
    exact = list(
        Customer.objects.filter(Q(external_id=query) | Q(email__iexact=query) | Q(phone=query)).order_by(
            "pk"
        )[:limit]
    )
    if exact:
        return exact
    words = query.split()
    by_name = Q()
    for word in words:
        by_name &= Q(first_name__icontains=word) | Q(last_name__icontains=word)
    return list(
        Customer.objects.filter(Q(email__icontains=query) | Q(phone__contains=query) | by_name).order_by(
            "pk"
        )[:limit]
    )


def activity_view(request, customer_id: int | None = None, *, model_admin):
    """Search a customer; then their runs as a timeline: nodes passed with
    times and the settings in force then, messages and their status, the stop
    reason."""
    _require(request, "customers.view_customer", "flows.view_run")
    query = (request.GET.get("q") or "").strip()
    customer = None
    results: list[Customer] = []
    runs: list[dict] = []
    page = None
    if customer_id is not None:
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            raise Http404("No such customer")
    elif query:
        results = search_customers(query=query)
        if len(results) == 1:
            return HttpResponseRedirect(reverse("admin:flows_customer_activity", args=[results[0].pk]))
    flow_id = _int_or_none(request.GET.get("flow"))
    if customer is not None:
        page = Paginator(
            customer_runs(customer_id=customer.pk, flow_id=flow_id), ACTIVITY_PAGE_SIZE
        ).get_page(request.GET.get("page"))
        runs = describe_runs(runs=list(page))
        for run in runs:
            for node in run["nodes"]:
                node["settings_text"] = (
                    json.dumps(node["settings"], indent=2, ensure_ascii=False)
                    if node["settings"] is not None
                    else ""
                )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Activity of {customer}" if customer else "Customer activity",
        "subtitle": None,
        "query": query,
        "results": results,
        "customer": customer,
        "runs": runs,
        "page": page,
        "flow_filter": flow_id,
        "customer_admin_url": (
            reverse("admin:customers_customer_change", args=[customer.pk])
            if customer is not None and admin.site.is_registered(Customer)
            else ""
        ),
    }
    return TemplateResponse(request, "admin/flows/activity.html", context)
