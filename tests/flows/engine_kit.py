"""Small builders for the engine semantics tests (tests/flows/test_engine_*.py):
flow documents, launching and re-launching them, customers in bulk, events
and ticks at a given moment, and reading back what the engine recorded (runs,
node passes, node stats).

Plain functions, no fixtures: every test reads top to bottom."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime

import time_machine
from django.db.models import Sum

from channels.models import Message, Template
from customers.models import Customer, PromoCode, PromoPool, Segment, SegmentMembership
from customers.services import store_events, upsert_customers
from flows import lifecycle
from flows.engine.tick import tick
from flows.models import Flow, NodePass, NodeStat, Run


def at(moment: datetime):
    """Travel to `moment` with the clock standing still."""
    return time_machine.travel(moment, tick=False)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- Documents ----------------------------------------------------------------


def node(key: str, kind: str, **config) -> dict:
    return {"key": key, "kind": kind, "config": config}


def edge(source: str, target: str, port: str = "next") -> dict:
    return {"from": source, "to": target, "port": port}


def chain(*keys: str) -> list[dict]:
    """Edges along `next` ports: chain("a", "b", "c") = a→b→c."""
    return [edge(source, target) for source, target in zip(keys, keys[1:])]


def event_start(event_type: str = "order_created", **config) -> dict:
    return node("start", "event", event_type=event_type, **config)


def send(template: str, channel: str = "email") -> dict:
    return {"action": "send", "channel": channel, "template": template}


def steps(key: str, *actions: dict, relevance: str = "P1D") -> dict:
    return node(key, "steps", relevance=relevance, steps=list(actions))


def start_then(*nodes: dict, event_type: str = "order_created", **settings) -> dict:
    """A document: an event start on `event_type`, then `nodes` chained along
    their `next` ports (`settings` as for document())."""
    keys = ["start", *(each["key"] for each in nodes)]
    return document([event_start(event_type), *nodes], chain(*keys), **settings)


def launch_limit(mode: str, period: str | None = None, max_total: int | None = None) -> dict:
    return {"mode": mode, "period": period, "max_total": max_total}


def document(
    nodes: list[dict],
    edges: list[dict],
    *,
    timezone: str = "UTC",
    launch_limit: dict | None = None,
    schedule: dict | None = None,
    name: str = "Engine test flow",
) -> dict:
    doc = {
        "format": "maestra.flow/1",
        "name": name,
        "timezone": timezone,
        "launch_limit": launch_limit or {"mode": "every_time", "period": None, "max_total": None},
        "nodes": copy.deepcopy(nodes),
        "edges": copy.deepcopy(edges),
    }
    if schedule is not None:
        doc["schedule"] = schedule
    return doc


# --- Lifecycle ------------------------------------------------------------------


def launch(doc: dict) -> Flow:
    """Create the flow and make `doc` its live version (in process, no cluster)."""
    flow = lifecycle.create_flow(document=doc)
    assert flow.status == Flow.Status.READY, flow.versions.get().errors
    lifecycle.launch_flow(flow=flow, enqueue=False)
    return lifecycle.finish_launch(flow_id=flow.pk)


def relaunch(flow: Flow, doc: dict) -> Flow:
    """Edit the live flow: a draft holding `doc`, launched as the new live version."""
    lifecycle.edit_flow(flow=flow)
    draft = lifecycle.save_draft(flow=flow, document=doc)
    assert draft.is_valid, draft.errors
    lifecycle.launch_flow(flow=flow, enqueue=False)
    flow = lifecycle.finish_launch(flow_id=flow.pk)
    assert flow.status == Flow.Status.ACTIVE
    return flow


def launch_at(moment: datetime, doc: dict, *external_ids: str, **profile) -> tuple:
    """At `moment`: `doc` launched, then one customer per external id (each
    with `profile`). Returns (flow, *customer ids), as in
    `flow, ann, bob = launch_at(NOW, doc, "ann", "bob")`."""
    with at(moment):
        flow = launch(doc)
        return (flow, *(customer(external_id, **profile) for external_id in external_ids))


def start_test(doc: dict) -> Flow:
    flow = lifecycle.create_flow(document=doc)
    assert flow.status == Flow.Status.READY, flow.versions.get().errors
    return lifecycle.start_test(flow=flow)


# --- Building blocks --------------------------------------------------------------


def email_templates(*slugs: str, purpose: str = Template.Purpose.SERVICE) -> None:
    for slug in slugs:
        Template.objects.create(
            slug=slug,
            name=slug,
            channel="email",
            purpose=purpose,
            subject=f"{slug} subject",
            text=f"{slug} for {{{{ customer.first_name }}}}",
        )


def template(slug: str, channel: str = "email", **content) -> Template:
    """A template named after its slug; `content`: subject, text, html, url, purpose…"""
    return Template.objects.create(slug=slug, name=slug, channel=channel, **content)


def promo_pool(slug: str, codes: int = 0) -> PromoPool:
    pool = PromoPool.objects.create(slug=slug, name=slug)
    PromoCode.objects.bulk_create([PromoCode(pool=pool, code=f"{slug}-{index}") for index in range(codes)])
    return pool


def customer(external_id: str, **profile) -> int:
    """One customer with an email address (events for customer_created and
    subscription_changed are stored too, as in production)."""
    row = {"external_id": external_id, "email": f"{external_id}@example.com", **profile}
    return upsert_customers(rows=[row])[external_id]


def bulk_customers(count: int, *, prefix: str = "bulk-", segment: str | None = None) -> list[int]:
    """`count` customers ("<prefix>0"…) inserted by one INSERT … SELECT (no
    events), optionally all members of a new static segment: big audiences in
    milliseconds, on SQLite and PostgreSQL alike."""
    from django.db import connection
    from django.utils import timezone

    from maestra.sql import db_value

    stamp = db_value(timezone.now())
    customers = Customer._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < %s) "
            f"INSERT INTO {customers} (external_id, email, email_valid, phone, first_name, last_name, "
            "timezone, fields, push_tokens, created_at, updated_at) "
            "SELECT %s || n, %s || n || '@example.com', TRUE, '', '', '', '', '{}', '{}', %s, %s FROM seq",
            [count - 1, prefix, prefix, stamp, stamp],
        )
        if segment is not None:
            segment_id = Segment.objects.create(slug=segment, name=segment, kind=Segment.Kind.STATIC).pk
            cursor.execute(
                f"INSERT INTO {SegmentMembership._meta.db_table} (segment_id, customer_id, added_at) "
                f"SELECT %s, id, %s FROM {customers} WHERE external_id LIKE %s",
                [segment_id, stamp, f"{prefix}%"],
            )
    return list(
        Customer.objects.filter(external_id__startswith=prefix).order_by("id").values_list("id", flat=True)
    )


def static_segment(slug: str, customer_ids: list[int]) -> Segment:
    segment = Segment.objects.create(slug=slug, name=slug, kind=Segment.Kind.STATIC)
    SegmentMembership.objects.bulk_create(
        [SegmentMembership(segment=segment, customer_id=customer_id) for customer_id in customer_ids],
        batch_size=2000,
    )
    return segment


def post_event(
    customer_id: int, event_type: str = "order_created", *, occurred_at: datetime, payload: dict | None = None
) -> int:
    stored = store_events(
        events=[
            {
                "customer_id": customer_id,
                "type": event_type,
                "occurred_at": occurred_at,
                "payload": payload or {},
            }
        ]
    )
    return stored["ids"][0]


def post_and_tick(
    moment: datetime,
    *customer_ids: int,
    event_type: str = "order_created",
    times: int = 1,
    payload: dict | None = None,
    occurred_at: datetime | None = None,
    deliver: bool = False,
) -> dict:
    """At `moment`: `times` events per customer (occurred at `occurred_at`,
    by default then), then one tick (without delivery unless `deliver`); the
    tick's counts."""
    with at(moment):
        for _ in range(times):
            for customer_id in customer_ids:
                post_event(customer_id, event_type, occurred_at=occurred_at or moment, payload=payload)
        return tick(deliver=deliver)


def tick_at(moment: datetime, *, deliver: bool = False) -> dict:
    """One tick at `moment` (without delivery unless `deliver`); its counts."""
    with at(moment):
        return tick(deliver=deliver)


# --- Reading back -------------------------------------------------------------------


def runs_of(flow: Flow, customer_id: int | None = None) -> list[Run]:
    runs = Run.objects.filter(flow=flow).order_by("id")
    if customer_id is not None:
        runs = runs.filter(customer_id=customer_id)
    return list(runs)


def path_of(run: Run) -> list[tuple[str, str, str]]:
    """(node_key, port, stop_reason) of every node the run passed, in order."""
    return list(
        NodePass.objects.filter(run=run).order_by("pass_no").values_list("node_key", "port", "stop_reason")
    )


def stats_of(flow: Flow, *, is_test: bool = False) -> Counter:
    """NodeStat counters summed over the hours: {(node_key, metric): count}."""
    rows = (
        NodeStat.objects.filter(flow=flow, is_test=is_test)
        .values("node_key", "metric")
        .annotate(total=Sum("count"))
    )
    return Counter({(row["node_key"], row["metric"]): row["total"] for row in rows})


def messages_of(flow: Flow, customer_id: int | None = None) -> list[Message]:
    messages = Message.objects.filter(flow_id=flow.pk).order_by("id")
    if customer_id is not None:
        messages = messages.filter(customer_id=customer_id)
    return list(messages)


def assert_stopped_without_messages(flow: Flow, run: Run, node_key: str, reason: str) -> None:
    """The run stopped at `node_key` for `reason` (its last pass says so, and
    the node's stats count that one stop), and the flow sent nothing."""
    assert (run.status, run.stop_reason) == (Run.Status.STOPPED, reason)
    assert path_of(run)[-1] == (node_key, "", reason)
    assert messages_of(flow) == []
    assert stats_of(flow)[(node_key, f"stop:{reason}")] == 1
