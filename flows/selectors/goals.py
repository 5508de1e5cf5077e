"""Goal statistics of a flow (SPEC §13), on the read side: how many runs
converted — their customer had an event meeting the flow's goal within its
window after the run entered — and the summed value of those conversions,
for the flow, per node (runs that passed the node and converted after
reaching it) and per exit port of each node (A/B variants, splitter
branches, condition answers).

A run converts once, on its first matching event; that event's value
(the number at `value_field`, 0 without one) is the run's value.

Runs counted: those that entered in the period [since, until); their
conversions may come after `until` (within the window). A fixed number of
queries whatever the flow's size: the conversions are found by one
correlated subquery per run (the index on events (customer, type,
occurred_at) serves it), then the converted runs' events and node passes
are read in one query each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, DateTimeField, ExpressionWrapper, F, OuterRef, Q, Subquery, Value

from customers.models import Event
from customers.rules import payload_q
from flows.engine.goals import Goal, read_goal
from flows.models import Flow, FlowVersion, NodePass, Run
from maestra import sql


def flow_goal(flow: Flow) -> Goal | None:
    """The goal in force: the live version's, else the newest version's."""
    versions = FlowVersion.objects.filter(flow=flow)
    if flow.live_version_id:
        versions = versions.filter(pk=flow.live_version_id)
    text = versions.order_by("-number").values_list("document_json", flat=True).first()
    return read_goal(json.loads(text)) if text else None


@dataclass(frozen=True)
class ConversionRules:
    """What counts as a conversion for the A/B statistics of a flow: its
    goal when it has one, else the site-wide conversion event types."""

    window_text: str
    event_types: list[str]
    events_q: Q  # on Event
    value_of: Any  # payload -> Decimal


def conversion_rules(
    flow: Flow, *, site_types: list[str], site_window: str, site_value_of
) -> ConversionRules:
    goal = flow_goal(flow)
    if goal is None:
        return ConversionRules(site_window, list(site_types), Q(type__in=site_types), site_value_of)
    matches = Q(type=goal.event_type)
    if goal.filter is not None:
        matches &= payload_q(goal.filter)
    return ConversionRules(goal.window_text, [goal.event_type], matches, goal.value_of)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(passed: int, converted: int, value: Decimal) -> dict[str, Any]:
    return {
        "entered": passed,
        "converted": converted,
        "rate": _rate(converted, passed),
        "value": float(value),
    }


def goal_stats(*, flow: Flow, since: datetime, until: datetime, is_test: bool = False) -> dict | None:
    """{"event_type", "window", "value_field", "entered", "converted", "rate",
    "value", "nodes": {key: {"entered", "converted", "rate", "value",
    "ports": {port: {…same figures…}}}}}; None for a flow without a goal.
    `rate` is converted / entered (0 to 1), None without runs."""
    goal = flow_goal(flow)
    if goal is None:
        return None
    window = goal.window.approximate()
    runs = Run.objects.filter(flow=flow, is_test=is_test, entered_at__gte=since, entered_at__lt=until)
    first_conversion = (
        goal.events()
        .filter(
            customer_id=OuterRef("customer_id"),
            occurred_at__gt=OuterRef("entered_at"),
            occurred_at__lte=ExpressionWrapper(
                OuterRef("entered_at") + Value(window), output_field=DateTimeField()
            ),
        )
        .order_by("occurred_at", "id")
        .values("id")[:1]
    )
    entered = runs.count()
    converted_runs = dict(
        runs.annotate(conversion=Subquery(first_conversion))
        .filter(conversion__isnull=False)
        .values_list("id", "conversion")
    )
    conversions: dict[int, tuple[datetime, Decimal]] = {}
    if converted_runs:
        columns = ("id", "occurred_at", "payload") if goal.value_field else ("id", "occurred_at")
        for row in Event.objects.filter(id__in=sql.in_values(set(converted_runs.values()))).values_list(
            *columns
        ):
            conversions[row[0]] = (row[1], goal.value_of(row[2]) if goal.value_field else Decimal(0))
    # run id -> (converted at, value)
    converted = {run_id: conversions[event_id] for run_id, event_id in converted_runs.items()}

    passes = NodePass.objects.filter(run_id__in=runs.values("id"))
    passed_node = dict(
        passes.values("node_key").annotate(n=Count("run_id", distinct=True)).values_list("node_key", "n")
    )
    passed_port: dict[tuple[str, str], int] = {
        (row["node_key"], row["port"]): row["n"]
        for row in passes.exclude(port="")
        .values("node_key", "port")
        .annotate(n=Count("run_id", distinct=True))
    }
    # Per node and port, the converted runs that reached it before converting
    # (a run passing twice counts once, with its earliest pass).
    node_hits: dict[str, set[int]] = {}
    port_hits: dict[tuple[str, str], set[int]] = {}
    if converted:
        rows = NodePass.objects.filter(run_id__in=sql.in_values(converted)).values_list(
            "run_id", "node_key", "port", "at"
        )
        for run_id, node_key, port, at in rows:
            if at > converted[run_id][0]:
                continue
            node_hits.setdefault(node_key, set()).add(run_id)
            if port:
                port_hits.setdefault((node_key, port), set()).add(run_id)

    def value(run_ids: set[int]) -> Decimal:
        return sum((converted[run_id][1] for run_id in run_ids), Decimal(0))

    nodes: dict[str, dict] = {}
    for key in sorted(set(passed_node) | set(node_hits)):
        hits = node_hits.get(key, set())
        nodes[key] = {**_figures(passed_node.get(key, 0), len(hits), value(hits)), "ports": {}}
    for key, port in sorted(set(passed_port) | set(port_hits)):
        hits = port_hits.get((key, port), set())
        target = nodes.setdefault(key, {**_figures(0, 0, Decimal(0)), "ports": {}})
        target["ports"][port] = _figures(passed_port.get((key, port), 0), len(hits), value(hits))
    return {
        "event_type": goal.event_type,
        "window": goal.window_text,
        "value_field": goal.value_field,
        **_figures(entered, len(converted), value(set(converted))),
        "nodes": nodes,
    }


def dashboard_conversions_q(
    *, flow_ids: list[int] | None, since: datetime, site_types: list[str], site_window: timedelta
) -> Q:
    """The dashboard's conversions (flows/dashboard.py), as a `Q` on Event
    joined to the customer's runs (`customer__runs__…`): flows with a goal
    count its event type, filter and window, the others the site-wide
    conversion types and attribution window. One query reads the goals of
    the live versions, whatever the number of flows; the caller puts the
    `Q` in the same filter() as its other run conditions (one join)."""
    versions = FlowVersion.objects.filter(flow__live_version_id=F("id"))
    if flow_ids is not None:
        versions = versions.filter(flow_id__in=flow_ids)
    goals = {}
    for flow_id, text in versions.values_list("flow_id", "document_json"):
        goal = read_goal(json.loads(text))
        if goal is not None:
            goals[flow_id] = goal
    site = Q(type__in=site_types, customer__runs__entered_at__gte=since - site_window)
    if flow_ids is not None:
        site &= Q(customer__runs__flow_id__in=[fid for fid in flow_ids if fid not in goals])
    elif goals:
        site &= ~Q(customer__runs__flow_id__in=list(goals))
    combined = site
    for flow_id, goal in sorted(goals.items()):
        own = Q(
            customer__runs__flow_id=flow_id,
            type=goal.event_type,
            customer__runs__entered_at__gte=since - goal.window.approximate(),
        )
        if goal.filter is not None:
            own &= payload_q(goal.filter)
        combined |= own
    return combined
