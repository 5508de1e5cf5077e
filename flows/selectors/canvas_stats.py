"""Read-side statistics the canvas shows on top of flows.selectors.stats.flow_stats
(SPEC §10): used/remaining places of limitation nodes and, per A/B variant,
entered, conversions (Wilson interval) and revenue. A fixed number of queries
per flow: one for the graph, one or two per limitation node (a flow has few),
two per A/B node.

Conversions: an order-type event (settings.MAESTRA_CONVERSION_EVENT_TYPES,
default "order_created"/"order") of the customer within the attribution
window (settings.MAESTRA_AB_ATTRIBUTION_WINDOW, default P7D) after the run
passed the A/B node. An event counts once, for the customer's latest pass
before it, so a customer passing twice does not double the revenue.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils.timezone import now as current_time

from customers.models import Event
from flows.models import Flow, LimitationCounter, LimitationGrant, Node, NodePass
from flows.nodes.base import ValidationContext
from flows.nodes.limitation import Limitation, counter_key
from flows.selectors.stats import flow_stats
from maestra.durations import parse_duration

DEFAULT_CONVERSION_TYPES = ("order_created", "order")
DEFAULT_ATTRIBUTION_WINDOW = "P7D"
REVENUE_KEYS = ("total", "revenue")
Z_95 = 1.959963984540054
LIMITATION = Limitation()


def conversion_event_types() -> list[str]:
    return list(getattr(settings, "MAESTRA_CONVERSION_EVENT_TYPES", DEFAULT_CONVERSION_TYPES))


def attribution_window() -> str:
    return getattr(settings, "MAESTRA_AB_ATTRIBUTION_WINDOW", DEFAULT_ATTRIBUTION_WINDOW)


def wilson_interval(successes: int, trials: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % by default); None
    without trials. Better than p ± z·se for small samples and rates near 0."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 and at trials the bound is exactly 0 or 1 (float noise aside).
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == trials else min(1.0, center + half)
    return low, high


def revenue_of(payload: Any) -> Decimal:
    """The order's amount from its payload ("total", else "revenue"); 0 when
    missing or not a number, so one odd event cannot break the page."""
    if not isinstance(payload, dict):
        return Decimal(0)
    for key in REVENUE_KEYS:
        value = payload.get(key)
        if isinstance(value, bool) or value is None:
            continue
        try:
            amount = Decimal(str(value))
        except (InvalidOperation, ValueError):
            continue
        if amount.is_finite():
            return amount
    return Decimal(0)


def _graph_nodes(flow: Flow, kinds: tuple[str, ...]) -> list[dict]:
    """Nodes of these kinds in the version whose settings are in force: the
    live version, else the newest one."""
    version_id = flow.live_version_id
    if version_id is None:
        version_id = flow.versions.order_by("-number").values_list("id", flat=True).first()
    if version_id is None:
        return []
    return list(
        Node.objects.filter(version_id=version_id, kind__in=kinds)
        .order_by("id")
        .values("key", "kind", "config")
    )


def limitation_usage(
    *, flow: Flow, nodes: list[dict], is_test: bool = False, at: datetime | None = None
) -> dict:
    """Per limitation node: {max, used, remaining, period, window_start} of the
    counter a pass would use now."""
    at = at or current_time()
    tz = ZoneInfo(flow.live_version.timezone) if flow.live_version_id else ZoneInfo("UTC")
    usage = {}
    for node in nodes:
        if node["kind"] != "limitation":
            continue
        config = node["config"] or {}
        if LIMITATION.validate(config, ValidationContext()):
            continue  # an invalid config: nothing was ever counted under it
        maximum = config["max"]
        signature, window_start, rolling_since = counter_key(config, now=at, tz=tz, is_test=is_test)
        counter = LimitationCounter.objects.filter(
            flow=flow, node_key=node["key"], signature=signature, window_start=window_start
        ).first()
        if counter is None:
            used = 0
        elif rolling_since is None:
            used = counter.used
        else:
            used = LimitationGrant.objects.filter(counter=counter, granted_at__gt=rolling_since).count()
        usage[node["key"]] = {
            "max": maximum,
            "used": used,
            "remaining": max(0, maximum - used),
            "period": config.get("period"),
            "window_start": None if rolling_since is not None else window_start,
            "rolling_since": rolling_since,
        }
    return usage


def ab_test_stats(
    *, flow: Flow, nodes: list[dict], since: datetime, until: datetime, is_test: bool = False
) -> dict:
    """Per A/B node and variant (runs that left the node in the period):
    entered, conversions, rate with its Wilson 95 % interval, revenue."""
    window = parse_duration(attribution_window())
    types = conversion_event_types()
    result = {}
    for node in nodes:
        if node["kind"] != "ab_test":
            continue
        variants = [
            v["name"]
            for v in (node["config"] or {}).get("variants") or []
            if isinstance(v, dict) and isinstance(v.get("name"), str)
        ]
        controls = {
            v["name"]
            for v in (node["config"] or {}).get("variants") or []
            if isinstance(v, dict) and v.get("control")
        }
        passes = NodePass.objects.filter(
            run__flow=flow,
            run__is_test=is_test,
            node_key=node["key"],
            exited_at__gte=since,
            exited_at__lt=until,
        ).exclude(port="")
        # per customer: their passes in time order [(exited_at, variant)]
        by_customer: dict[int, list[tuple[datetime, str]]] = {}
        entered: dict[str, int] = dict.fromkeys(variants, 0)
        for customer_id, exited_at, port in passes.order_by("exited_at").values_list(
            "run__customer_id", "exited_at", "port"
        ):
            by_customer.setdefault(customer_id, []).append((exited_at, port))
            entered[port] = entered.get(port, 0) + 1
        converted: set[tuple[int, int]] = set()
        revenue: dict[str, Decimal] = {}
        if by_customer:
            latest_end = window.add_to(until, UTC)
            events = Event.objects.filter(
                customer_id__in=passes.values("run__customer_id"),
                type__in=types,
                occurred_at__gte=since,
                occurred_at__lt=latest_end,
            ).values_list("customer_id", "occurred_at", "payload")
            for customer_id, occurred_at, payload in events.iterator(chunk_size=2000):
                history = by_customer.get(customer_id)
                if not history:
                    continue
                # The customer's latest pass at or before the event.
                index = bisect_right([at for at, _port in history], occurred_at) - 1
                if index < 0:
                    continue
                passed_at, port = history[index]
                if occurred_at > window.add_to(passed_at, UTC):
                    continue
                converted.add((customer_id, index))
                revenue[port] = revenue.get(port, Decimal(0)) + revenue_of(payload)
        conversions: dict[str, int] = {}
        for customer_id, index in converted:
            port = by_customer[customer_id][index][1]
            conversions[port] = conversions.get(port, 0) + 1
        rows = []
        for name in [*variants, *sorted(set(entered) - set(variants))]:
            n, x = entered.get(name, 0), conversions.get(name, 0)
            interval = wilson_interval(x, n)
            rows.append(
                {
                    "variant": name,
                    "control": name in controls,
                    "entered": n,
                    "conversions": x,
                    "rate": x / n if n else None,
                    "ci_low": interval[0] if interval else None,
                    "ci_high": interval[1] if interval else None,
                    "revenue": float(revenue.get(name, Decimal(0))),
                }
            )
        result[node["key"]] = {
            "variants": rows,
            "window": attribution_window(),
            "event_types": types,
        }
    return result


def canvas_stats(*, flow: Flow, since: datetime, until: datetime, is_test: bool = False) -> dict:
    """flows.selectors.stats.flow_stats, keyed by node for the canvas, with limitation
    usage and A/B results added to their nodes."""
    base = flow_stats(flow=flow, since=since, until=until, is_test=is_test)
    special = _graph_nodes(flow, ("limitation", "ab_test"))
    limitation = limitation_usage(flow=flow, nodes=special, is_test=is_test)
    ab = ab_test_stats(flow=flow, nodes=special, since=since, until=until, is_test=is_test)
    nodes = {}
    for node in base["nodes"]:
        key = node["key"]
        nodes[key] = {**node, "limitation": limitation.get(key), "ab_test": ab.get(key)}
    return {
        "from": since,
        "to": until,
        "test": is_test,
        "start_node": base["start_node"],
        "start_entered": base["start_entered"],
        "nodes": nodes,
    }
