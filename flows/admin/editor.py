"""The flow editor's guard rails and live status, beside the Flow admin:
the launch review (what starts the flow, who would enter now, the launch
limit, the schedule, what changes against the live version), the launch
itself (a paused flow asks whether to resume), the draft conflict answer
and a small status endpoint the page polls while a launch is under way.
FlowAdmin.get_urls wires the views; writes go through flows.lifecycle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from flows.errors import AudienceUnavailable, DraftConflict, LifecycleError
from flows.lifecycle.launch import launch_flow
from flows.models import Flow, FlowVersion
from flows.plain_language import describe_exit, describe_goal  # goal hook
from flows.selectors.audience import audience_preview
from flows.version_diff import diff_against_live
from maestra.admin_base import permitted_object

# Statuses a flow passes through on its own (a worker finishes them): the
# page polls the status endpoint while the flow is in one of them.
TRANSIENT = (Flow.Status.LAUNCHING, Flow.Status.CREATING_DRAFT)
POLL_SECONDS = 3


def _json(data: Any, *, status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, encoder=DjangoJSONEncoder, safe=False)


def editor_urls(*, flow: Flow) -> dict[str, str]:
    """The editor's endpoints of this module, for canvas_config."""
    return {
        "review": reverse("admin:flows_flow_launch_review", args=[flow.pk]),
        "launch": reverse("admin:flows_flow_launch", args=[flow.pk]),
        "status": reverse("admin:flows_flow_status", args=[flow.pk]),
        # The template admin's preview and send-test pages (template-preview.js fills in the id).
        "templatePreview": reverse("admin:channels_template_preview", args=["__id__"]),
        "templatePreviewHtml": reverse("admin:channels_template_preview_html", args=["__id__"]),
        "templateSendTest": reverse("admin:channels_template_send_test", args=["__id__"]),
    }


def conflict_response(error: DraftConflict) -> JsonResponse:
    """409 for a stale autosave: the editor shows a conflict banner with a
    Reload button and stops saving (never a silent overwrite)."""
    return _json(
        {
            "code": "draft_conflict",
            "message": _(
                "Someone else changed this draft since you opened it (another tab or person). "
                "Reload to see their version; your last change here was not saved."
            ),
            "revision": error.revision,
            "errors": [{"field": "revision", "message": error.message}],
        },
        status=409,
    )


# --- Launch review ----------------------------------------------------------------


def humanize_period(period: timedelta | None) -> str:
    if period is None:
        return ""
    days, seconds = period.days, period.seconds
    if days and not seconds:
        if days % 7 == 0:
            return ngettext("%(n)d week", "%(n)d weeks", days // 7) % {"n": days // 7}
        return ngettext("%(n)d day", "%(n)d days", days) % {"n": days}
    hours = round(period.total_seconds() / 3600)
    return ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}


def describe_start(document: dict) -> str:
    start = next(
        (
            node
            for node in document.get("nodes") or []
            if isinstance(node, dict) and node.get("kind") in ("event", "schedule")
        ),
        None,
    )
    if start is None:
        return _("Nothing starts it yet: add an Event or a Schedule node.")
    config = start.get("config") or {}
    if start["kind"] == "event":
        text = _("A customer enters when an event “%(type)s” arrives") % {
            "type": config.get("event_type") or "?"
        }
        return text + (_(", if it passes the start filter.") if config.get("filter") else ".")
    recurrence = config.get("recurrence") or {}
    if "cron" in recurrence:
        when = _("on the schedule “%(cron)s”") % {"cron": recurrence["cron"]}
    elif recurrence.get("every"):
        when = _("every %(every)s at %(at)s") % {
            "every": recurrence.get("every"),
            "at": recurrence.get("at") or "00:00",
        }
    else:
        when = _("on a schedule")
    return _("Its audience enters %(when)s.") % {"when": when}


def describe_limit(version: FlowVersion) -> str:
    mode = version.launch_limit_mode
    if mode == FlowVersion.LaunchLimit.ONCE:
        text = _("A customer goes through it only once, ever.")
    elif mode == FlowVersion.LaunchLimit.PERIODIC:
        text = _("A customer goes through it at most once every %(period)s.") % {
            "period": humanize_period(version.launch_limit_period)
        }
    else:
        text = _("A customer goes through it every time they qualify.")
    if version.launch_limit_max_total:
        text += " " + _("At most %(n)s times in total per customer.") % {"n": version.launch_limit_max_total}
    return text


def describe_schedule(version: FlowVersion) -> str:
    def when(moment):
        return timezone.localtime(moment, timezone=_zone(version.timezone)).strftime("%Y-%m-%d %H:%M")

    zone = version.timezone or "UTC"
    if version.start_at and version.end_at:
        return _("From %(start)s to %(end)s (%(zone)s).") % {
            "start": when(version.start_at),
            "end": when(version.end_at),
            "zone": zone,
        }
    if version.start_at:
        return _("From %(start)s (%(zone)s), with no end.") % {"start": when(version.start_at), "zone": zone}
    if version.end_at:
        return _("From the launch until %(end)s (%(zone)s).") % {"end": when(version.end_at), "zone": zone}
    return _("From the launch, with no end (time zone %(zone)s).") % {"zone": zone}


def _zone(name: str):
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError, OSError):
        return ZoneInfo("UTC")


def describe_audience(version: FlowVersion) -> dict[str, Any]:
    """Who would enter now, counted by the audience preview (the rule of real
    entry: same selector as the API's audience-preview)."""
    try:
        preview = audience_preview(version=version, now=timezone.now())
    except AudienceUnavailable as unavailable:
        if version.document and any(
            isinstance(n, dict) and n.get("kind") == "event" for n in version.document.get("nodes") or []
        ):
            text = _(
                "Customers enter one by one as their events arrive: there is no audience to count ahead."
            )
        else:
            text = _("The audience cannot be counted: %(reason)s") % {"reason": unavailable.message}
        return {"available": False, "text": text}
    text = ngettext(
        "%(n)s customer would enter now.", "%(n)s customers would enter now.", preview["would_enter"]
    ) % {"n": preview["would_enter"]}
    if preview["blocked_by_launch_limit"]:
        text += " " + _("%(n)s more match but the launch limit keeps them out.") % {
            "n": preview["blocked_by_launch_limit"]
        }
    return {"available": True, "text": text, **preview}


def describe_changes(diff: dict | None) -> list[str]:
    if diff is None:
        return []
    lines = []
    if diff["added"]:
        lines.append(_("Added: %(keys)s") % {"keys": ", ".join(diff["added"])})
    if diff["removed"]:
        lines.append(_("Removed: %(keys)s") % {"keys": ", ".join(n["key"] for n in diff["removed"])})
    if diff["changed"]:
        lines.append(_("Changed: %(keys)s") % {"keys": ", ".join(n["key"] for n in diff["changed"])})
    if diff["settings"]:
        lines.append(_("Flow settings changed: %(names)s") % {"names": ", ".join(diff["settings"])})
    if not lines:
        lines.append(_("No change to the nodes or settings."))
    return lines


def launch_review(*, flow: Flow) -> dict[str, Any]:
    draft = flow.draft
    if draft is None:
        raise LifecycleError(_("There is no draft to launch: edit the flow first."))
    diff = diff_against_live(flow=flow, version=draft)
    return {
        "flow": flow.pk,
        "status": flow.status,
        "version": draft.number,
        "revision": draft.revision,
        "valid": draft.is_valid,
        "errors": len(draft.errors),
        "paused": flow.status == Flow.Status.PAUSED,
        "start": describe_start(draft.document),
        "audience": describe_audience(draft),
        "launch_limit": describe_limit(draft),
        "schedule": describe_schedule(draft),
        "goal": describe_goal(draft.document),  # goal hook (flows/plain_language.py)
        "exit": describe_exit(draft.document),  # goal hook
        "live_version": diff["against"] if diff else None,
        "diff": diff,
        "changes": describe_changes(diff),
    }


def _flow_for(request, object_id, model_admin, *, change: bool) -> Flow:
    return permitted_object(
        model_admin, request, object_id, what="flow", permission="change" if change else "view"
    )


def launch_review_view(request, object_id, *, model_admin):
    """GET: the launch review of the draft, as JSON for the dialog."""
    if request.method != "GET":
        return _json({"errors": [{"field": "", "message": "Use GET."}]}, status=405)
    try:
        flow = _flow_for(request, object_id, model_admin, change=True)
        return _json(launch_review(flow=flow))
    except Http404:
        return _json({"message": _("No such flow.")}, status=404)
    except PermissionDenied:
        return _json({"message": _("You may not do this.")}, status=403)
    except LifecycleError as error:
        return _json({"message": error.message, "errors": error.errors}, status=409)


def launch_view(request, object_id, *, model_admin):
    """POST from the launch review: launch the draft; on a paused flow,
    `resume` (1/0) says whether the new version goes live active or paused."""
    if request.method != "POST":
        return HttpResponse(status=405)
    flow = _flow_for(request, object_id, model_admin, change=True)
    keep_paused = flow.status == Flow.Status.PAUSED and request.POST.get("resume") != "1"
    try:
        launch_flow(flow=flow, user=request.user, keep_paused=keep_paused)
    except LifecycleError as error:
        model_admin.message_user(request, error.message, messages.ERROR)
    else:
        model_admin.message_user(
            request,
            _("Launch started: the draft goes live paused, as you chose.")
            if keep_paused
            else _("Launch started: the draft goes live as soon as the worker finishes it."),
            messages.SUCCESS,
        )
    return HttpResponseRedirect(reverse("admin:flows_flow_change", args=[flow.pk]))


# --- Live status --------------------------------------------------------------------


def flow_status(*, flow: Flow) -> dict[str, Any]:
    return {
        "status": flow.status,
        "label": flow.get_status_display(),
        "transient": flow.status in TRANSIENT,
        "live_version": flow.live_version.number if flow.live_version_id else None,
        "poll_seconds": POLL_SECONDS,
    }


def status_view(request, object_id, *, model_admin):
    """GET: the flow's status, polled by live-status.js while transient."""
    if request.method != "GET":
        return _json({"errors": [{"field": "", "message": "Use GET."}]}, status=405)
    flow = model_admin.get_object(request, object_id)
    if flow is None:
        return _json({"message": _("No such flow.")}, status=404)
    if not model_admin.has_view_permission(request, flow):
        return _json({"message": _("You may not do this.")}, status=403)
    return _json(flow_status(flow=flow))


def urls(view) -> list:
    """The URL patterns of this module; `view` wraps a function with the
    admin's login check and model_admin (FlowAdmin.get_urls)."""
    return [
        path(
            "<path:object_id>/canvas/launch-review/",
            view(launch_review_view),
            name="flows_flow_launch_review",
        ),
        path("<path:object_id>/canvas/launch/", view(launch_view), name="flows_flow_launch"),
        path("<path:object_id>/canvas/status/", view(status_view), name="flows_flow_status"),
    ]
