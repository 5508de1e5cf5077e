"""The monitoring page: failed and not-sent messages and failed steps, with
their errors. What it lists and how it filters is the read side's
(flows/selectors/monitoring.py); this module draws the page."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.template.response import TemplateResponse

from customers.models import Channel
from flows.admin.common import PAGE_SIZE, parse_period, query_without, require
from flows.alerts import current_alerts
from flows.models import Flow
from flows.selectors.monitoring import STEP_FAILURE_REASONS, attach_step_errors, failures


def monitoring_view(request, *, model_admin):
    """Failed and not-sent messages and failed steps, with their errors,
    filterable by flow, channel, reason and period (the filters:
    flows/selectors/monitoring.py)."""
    require(request, "channels.view_message", "flows.view_run")
    try:
        since, until = parse_period(request.GET)
        period_error = ""
    except ValueError as error:
        since, until = parse_period({})
        period_error = str(error)
    found = failures(request.GET, since=since, until=until)
    show, messages_qs, steps_qs = found.show, found.messages, found.steps

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
        attach_step_errors(rows)

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
            "flow": found.flow,
            "channel": found.channel,
            "reason": found.reason,
            "from": request.GET.get("from", ""),
            "to": request.GET.get("to", ""),
        },
        "flows": Flow.objects.order_by("name").values_list("pk", "name"),
        "channels": Channel.choices,
        "step_reasons": STEP_FAILURE_REASONS,
        "message_count": messages_qs.count(),
        "step_count": steps_qs.count(),
        "query_without_page": query_without(request.GET, "page"),
        "query_without_show": query_without(request.GET, "page", "show"),
        "alerts": current_alerts(),
    }
    return TemplateResponse(request, "admin/flows/monitoring.html", context)
