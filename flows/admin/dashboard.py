"""The marketer's home: a dashboard of the flows (how many in each status;
per flow the customers who entered, the messages sent and the goal
conversions of the last 7 days, day by day, with sparklines) and the
figures of the flow list. A fixed number of aggregate queries however many
flows there are: one per figure, grouped by flow and day.

Goal conversions are the site-wide conversion events of the A/B statistics
(settings.MAESTRA_CONVERSION_EVENT_TYPES, flows/selectors/canvas_stats.py) made by
customers after they entered the flow (a run started in the period or the
attribution window before it), counted on the day of the event."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, TruncDate
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from channels.models import Message
from customers.models import Event
from flows.models import Flow, Run
from flows.selectors.canvas_stats import attribution_window, conversion_event_types
from maestra.durations import parse_duration

DAYS = 7
SPARK_WIDTH = 84
SPARK_HEIGHT = 22


def period(*, now: datetime | None = None, days: int = DAYS) -> tuple[list[date], datetime, datetime]:
    """The last `days` whole days up to today (today included), in the
    current time zone: (the days, the first day's start, now)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    return [first + timedelta(days=n) for n in range(days)], since, now


def _by_flow_and_day(rows) -> dict[int, dict[date, int]]:
    table: dict[int, dict[date, int]] = defaultdict(dict)
    for flow_id, day, n in rows:
        table[flow_id][day] = n
    return table


def daily_figures(*, flow_ids: list[int] | None, since: datetime, until: datetime) -> dict[str, dict]:
    """{"entered" | "sent" | "conversions": {flow_id: {day: n}}} in three queries."""
    zone = timezone.get_current_timezone()
    runs = Run.objects.filter(is_test=False, entered_at__gte=since, entered_at__lt=until)
    messages = Message.objects.filter(
        is_test=False,
        flow_id__isnull=False,
        status=Message.Status.SENT,
        created_at__gte=since,
        created_at__lt=until,
    )
    # A conversion counts for runs that entered up to one attribution window before the period.
    earliest_entry = since - _as_timedelta(parse_duration(attribution_window()))
    conversions = Event.objects.filter(
        type__in=conversion_event_types(),
        occurred_at__gte=since,
        occurred_at__lt=until,
        customer__runs__is_test=False,
        customer__runs__entered_at__gte=earliest_entry,
        customer__runs__entered_at__lte=F("occurred_at"),
    )
    if flow_ids is not None:
        runs = runs.filter(flow_id__in=flow_ids)
        messages = messages.filter(flow_id__in=flow_ids)
        conversions = conversions.filter(customer__runs__flow_id__in=flow_ids)
    return {
        "entered": _by_flow_and_day(
            runs.annotate(day=TruncDate("entered_at", tzinfo=zone))
            .values_list("flow_id", "day")
            .annotate(n=Count("id"))
            .order_by()
        ),
        "sent": _by_flow_and_day(
            messages.annotate(day=TruncDate("created_at", tzinfo=zone))
            .values_list("flow_id", "day")
            .annotate(n=Count("id"))
            .order_by()
        ),
        "conversions": _by_flow_and_day(
            conversions.annotate(day=TruncDate("occurred_at", tzinfo=zone))
            .values_list("customer__runs__flow_id", "day")
            .annotate(n=Count("id", distinct=True))
            .order_by()
        ),
    }


def _as_timedelta(duration) -> timedelta:
    # The attribution window as a length of time (a month from 1 January: 31 days).
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return duration.add_to(start, UTC) - start


def sparkline(values: list[int]) -> dict[str, Any]:
    """The points of an inline SVG polyline (viewBox 0 0 SPARK_WIDTH SPARK_HEIGHT)."""
    top = max(values) or 1
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    points = " ".join(
        f"{round(index * step, 1)},{round(SPARK_HEIGHT - 2 - (value / top) * (SPARK_HEIGHT - 4), 1)}"
        for index, value in enumerate(values)
    )
    return {"points": points, "width": SPARK_WIDTH, "height": SPARK_HEIGHT, "max": max(values)}


def dashboard(*, now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard page shows, in five queries."""
    days, since, until = period(now=now)
    counts = dict(Flow.objects.values_list("status").annotate(n=Count("id")).order_by())
    by_status = [
        {"status": value, "label": label, "count": counts.get(value, 0)}
        for value, label in Flow.Status.choices
    ]
    flows = list(
        Flow.objects.exclude(status=Flow.Status.ARCHIVED)
        .order_by("-updated_at")
        .values("id", "name", "status")[:200]
    )
    figures = daily_figures(flow_ids=None, since=since, until=until)
    labels = dict(Flow.Status.choices)
    rows = []
    for flow in flows:
        row = {**flow, "status_label": labels.get(flow["status"], flow["status"])}
        for name in ("entered", "sent", "conversions"):
            series = [figures[name].get(flow["id"], {}).get(day, 0) for day in days]
            row[name] = {"total": sum(series), "series": series, "spark": sparkline(series)}
        rows.append(row)
    return {"days": days, "since": since, "until": until, "by_status": by_status, "flows": rows}


def dashboard_view(request, *, model_admin):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": _("Flows dashboard"),
        "subtitle": None,
        "conversion_types": conversion_event_types(),
        **dashboard(),
    }
    return TemplateResponse(request, "admin/flows/dashboard.html", context)


def urls(view) -> list:
    return [path("dashboard/", view(dashboard_view), name="flows_dashboard")]


# --- Figures in the flow list ---------------------------------------------------------------


def with_list_figures(queryset: QuerySet[Flow], *, now: datetime | None = None) -> QuerySet[Flow]:
    """The flow list's queryset with entered_7d and sent_7d: correlated
    aggregates in the list's own query, not one query per row."""
    _days, since, _until = period(now=now)
    entered = (
        Run.objects.filter(flow=OuterRef("pk"), is_test=False, entered_at__gte=since)
        .order_by()
        .values("flow")
        .annotate(n=Count("id"))
        .values("n")
    )
    sent = (
        Message.objects.filter(
            flow_id=OuterRef("pk"), is_test=False, status=Message.Status.SENT, created_at__gte=since
        )
        .order_by()
        .values("flow_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return queryset.annotate(
        entered_7d=Coalesce(Subquery(entered, output_field=IntegerField()), Value(0)),
        sent_7d=Coalesce(Subquery(sent, output_field=IntegerField()), Value(0)),
    )


@admin.display(description=_("entered (7 days)"), ordering="entered_7d")
def entered_7d(obj: Flow) -> int:
    return getattr(obj, "entered_7d", 0)


@admin.display(description=_("sent (7 days)"), ordering="sent_7d")
def sent_7d(obj: Flow) -> int:
    return getattr(obj, "sent_7d", 0)


# --- Internal tables ---------------------------------------------------------------------------


class InternalTableMixin:
    """Engine bookkeeping (edges, passes, counters, grants, assignments,
    statistics buckets): kept out of the Marketer's menu. The pages stay
    reachable by URL for whoever holds the view permission (links from the
    flow's statistics), but only superusers see them listed."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser
