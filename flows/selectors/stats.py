"""Run statistics of a flow for a period (SPEC §10), read from the hourly
node counters the engine keeps (flows.models.NodeStat), the runs waiting now
and the outbox. A fixed number of queries, whatever the size of the flow.

NodeStat metrics: "entered", "exit:<port>", "stop:<reason>" per
(flow, node_key, hour, is_test).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Sum

from channels.engagement import engagement_by_node
from channels.models import Message
from flows.engine.batch import hour_of
from flows.models import Flow, FlowVersion, Node, NodeStat, Run
from flows.selectors.ab_winner import winners_by_node

START_KINDS = ("event", "schedule")


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _graph_version(flow: Flow) -> FlowVersion | None:
    """The version whose nodes name the rows: the live one, else the newest."""
    if flow.live_version_id:
        return FlowVersion(pk=flow.live_version_id)
    return flow.versions.order_by("-number").only("id").first()


def flow_stats(*, flow: Flow, since: datetime, until: datetime, is_test: bool = False) -> dict[str, Any]:
    """Per node: entered, exits by port, stops by reason (hourly buckets from
    the hour holding `since` up to, not including, `until`), runs waiting
    there now, messages by status (created in the period), and each count as
    a percentage of the start node's `entered`. Test runs count apart."""
    counters: dict[str, dict[str, Any]] = {}

    def node(key: str) -> dict[str, Any]:
        return counters.setdefault(
            key, {"entered": 0, "exits": {}, "stops": {}, "waiting_now": 0, "messages": {}}
        )

    rows = (
        NodeStat.objects.filter(
            flow=flow, is_test=is_test, hour__gte=hour_of(since.astimezone(UTC)), hour__lt=until
        )
        .values("node_key", "metric")
        .annotate(total=Sum("count"))
        .order_by()
    )
    for row in rows:
        metric, total = row["metric"], row["total"]
        target = node(row["node_key"])
        if metric == "entered":
            target["entered"] += total
        elif metric.startswith("exit:"):
            port = metric.removeprefix("exit:")
            target["exits"][port] = target["exits"].get(port, 0) + total
        elif metric.startswith("stop:"):
            reason = metric.removeprefix("stop:")
            target["stops"][reason] = target["stops"].get(reason, 0) + total
    waiting = (
        Run.objects.filter(flow=flow, is_test=is_test, status=Run.Status.WAITING)
        .values("node_key")
        .annotate(total=Count("id"))
        .order_by()
    )
    for row in waiting:
        node(row["node_key"])["waiting_now"] = row["total"]
    messages = (
        Message.objects.filter(flow_id=flow.pk, is_test=is_test, created_at__gte=since, created_at__lt=until)
        .values("node_key", "status")
        .annotate(total=Count("id"))
        .order_by()
    )
    for row in messages:
        node(row["node_key"])["messages"][row["status"]] = row["total"]
    # Unique opens and clicks of email steps (channels/engagement.py).
    for key, figures in engagement_by_node(
        flow_id=flow.pk, since=since, until=until, is_test=is_test
    ).items():
        node(key)["email"] = figures

    version = _graph_version(flow)
    graph = (
        list(Node.objects.filter(version_id=version.pk).order_by("id").values("key", "kind", "title"))
        if version is not None
        else []
    )
    winners = winners_by_node(flow_id=flow.pk)
    start = next((row["key"] for row in graph if row["kind"] in START_KINDS), None)
    base = counters.get(start, {}).get("entered", 0) if start else 0
    ordered = [(row["key"], row["kind"], row["title"]) for row in graph]
    known = {key for key, _kind, _title in ordered}
    # Nodes of earlier versions that are gone from this one still have history.
    ordered += [(key, None, "") for key in sorted(counters) if key not in known]
    nodes = []
    for key, kind, title in ordered:
        counts = counters.get(key) or node(key)
        nodes.append(
            {
                "key": key,
                "kind": kind,
                "title": title,
                "entered": counts["entered"],
                "entered_percent": _percent(counts["entered"], base),
                "exits": [
                    {"port": port, "count": n, "percent": _percent(n, base)}
                    for port, n in sorted(counts["exits"].items())
                ],
                "stops": [
                    {"reason": reason, "count": n, "percent": _percent(n, base)}
                    for reason, n in sorted(counts["stops"].items())
                ],
                "waiting_now": counts["waiting_now"],
                "messages": dict(sorted(counts["messages"].items())),
                "email": counts.get("email"),
                "ab_winner": winners.get(key),
            }
        )
    return {
        "flow": flow.pk,
        "from": since,
        "to": until,
        "test": is_test,
        "start_node": start,
        "start_entered": base,
        "nodes": nodes,
    }
