"""A customer's activity (SPEC §10, §11): their runs, each node passed with
the settings in force at the time, and each message. Loaded for a page of
runs in a fixed number of queries (runs, passes, node settings, messages),
however many runs, passes and messages there are. And the customer search
the activity page starts from."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from channels.models import Message
from customers.models import Customer
from flows.models import Node, NodePass, Run

RUN_FIELDS = (
    "id",
    "flow_id",
    "flow__name",
    "version__number",
    "is_test",
    "status",
    "node_key",
    "entered_at",
    "ended_at",
    "stop_reason",
    "error",
)


def customer_runs(*, customer_id: int, flow_id: int | None = None) -> QuerySet:
    """The customer's runs, newest first, as value rows (paginate, then pass a
    page to `describe_runs`)."""
    runs = Run.objects.filter(customer_id=customer_id)
    if flow_id is not None:
        runs = runs.filter(flow_id=flow_id)
    return runs.order_by("-entered_at", "-id").values(*RUN_FIELDS)


def describe_runs(*, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The activity shape of each run row from `customer_runs`."""
    run_ids = [run["id"] for run in runs]
    if not run_ids:
        return []
    passes = list(
        NodePass.objects.filter(run_id__in=run_ids)
        .order_by("run_id", "pass_no")
        .values("run_id", "version_id", "node_key", "kind", "at", "exited_at", "port", "stop_reason")
    )
    wanted_versions = {row["version_id"] for row in passes}
    wanted_keys = {row["node_key"] for row in passes}
    settings_of = {
        (row["version_id"], row["key"]): row["config"]
        for row in Node.objects.filter(version_id__in=wanted_versions, key__in=wanted_keys).values(
            "version_id", "key", "config"
        )
    }
    nodes_by_run: dict[int, list[dict[str, Any]]] = {}
    for row in passes:
        nodes_by_run.setdefault(row["run_id"], []).append(
            {
                "key": row["node_key"],
                "kind": row["kind"],
                "at": row["at"],
                "exited_at": row["exited_at"],
                "port": row["port"] or None,
                "stop_reason": row["stop_reason"] or None,
                "settings": settings_of.get((row["version_id"], row["node_key"])),
            }
        )
    messages_by_run: dict[int, list[dict[str, Any]]] = {}
    messages = (
        Message.objects.filter(run_id__in=run_ids)
        .order_by("run_id", "created_at", "id")
        .values(
            "id",
            "run_id",
            "node_key",
            "channel",
            "template_slug",
            "status",
            "reason",
            "created_at",
            "sent_at",
        )
    )
    for row in messages:
        messages_by_run.setdefault(row["run_id"], []).append(
            {
                "id": row["id"],
                "node": row["node_key"],
                "channel": row["channel"],
                "template": row["template_slug"],
                "status": row["status"],
                "reason": row["reason"],
                "created_at": row["created_at"],
                "sent_at": row["sent_at"],
            }
        )
    in_flight = (Run.Status.ACTIVE, Run.Status.WAITING)
    return [
        {
            "id": run["id"],
            "flow": run["flow_id"],
            "flow_name": run["flow__name"],
            "version": run["version__number"],
            "is_test": run["is_test"],
            "status": run["status"],
            "current_node": run["node_key"] if run["status"] in in_flight else None,
            "entered_at": run["entered_at"],
            "ended_at": run["ended_at"],
            "stop_reason": run["stop_reason"] or None,
            # What went wrong when the engine stopped the run (engine_error).
            "error": run["error"] or None,
            "nodes": nodes_by_run.get(run["id"], []),
            "messages": messages_by_run.get(run["id"], []),
        }
        for run in runs
    ]


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
