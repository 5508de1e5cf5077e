"""Whatever validates runs (SPEC §12, issue #11): valid documents with extreme
values — the longest durations (100 years), the largest numbers the columns
hold, numbers JSON carries (10**30, 1e308), nesting up to the 32-level limit,
every recurrence shape (crons that fire once in 12 years included), overnight
and whole-day windows, every node kind — are launched and ticked through a
century, and the engine raises nothing and isolates nothing: no launch, fire,
event or run fails, no run stops with `engine_error`.

The documents come from tests/flows/document_strategies.py (the strategies
the validation tests use), so what the validators accept and what the engine
runs are tested from the same source. The customers and events the runs see
are extreme too: dates at the ends of the calendar, deep custom fields and
payloads."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import time_machine
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings

from channels.models import Template
from customers.models import PromoCode, PromoPool, Segment
from customers.services import set_subscriptions, store_events, upsert_customers
from flows import lifecycle
from flows.document import document_settings
from flows.engine.tick import error_count, tick
from flows.models import Flow, FlowVersion, NodePass, Run
from tests.flows.document_strategies import CHANNELS, CONTEXT, MAX_NESTING, documents, nested

LAUNCHED = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # the night before Europe's DST change
# After the launch: the next minutes and days (waits, windows, relevance), a
# DST change, the rarest schedules (12 years), a century of waits.
LATER = [
    timedelta(minutes=1),
    timedelta(hours=3),
    timedelta(days=1),
    timedelta(days=9),
    timedelta(days=45),
    timedelta(days=366 * 13),
    timedelta(days=366 * 101),
]


def _building_blocks() -> None:
    """The templates, segments and pool CONTEXT names (the documents are valid against them)."""
    for channel in CHANNELS:
        Template.objects.create(
            slug=f"t-{channel}",
            name=channel,
            channel=channel,
            purpose=Template.Purpose.SERVICE,
            subject="{{ customer.first_name }} {{ event.total }}",
            text="{{ customer.fields }} {{ event }} {{ promo_code }} {{ flow.name }}",
            url="http://127.0.0.1:9/hook" if channel == "webhook" else "",
        )
    Segment.objects.create(slug="static-seg", name="static", kind=Segment.Kind.STATIC)
    Segment.objects.create(
        slug="rule-seg", name="rule", kind=Segment.Kind.RULE, rule={"field": "customer.email", "op": "exists"}
    )
    pool = PromoPool.objects.create(slug="pool", name="pool")
    PromoCode.objects.bulk_create(PromoCode(pool=pool, code=f"CODE-{index}") for index in range(3))
    assert set(Template.objects.values_list("slug", flat=True)) == set(CONTEXT.templates)


def _customers(deep_field, deep_payload) -> tuple[dict[str, int], list[dict]]:
    """Three people at the edges: dates at both ends of the calendar, huge
    numbers, custom fields and payloads nested as deep as allowed."""
    rows = [
        {
            "external_id": "ada",
            "email": "ada@example.com",
            "first_name": "Ada",
            "timezone": "Pacific/Kiritimati",  # UTC+14
            "fields": {"tier": "gold", "birthday": "0001-01-01", "seen": "2026-03-28", "deep": deep_field},
        },
        {
            "external_id": "bob",
            "phone": "+4915100000001",
            "timezone": "Pacific/Niue",  # UTC-11
            "fields": {"birthday": "9999-12-31T23:59:59+00:00", "total": 10**30, "big": 1e308},
        },
        {"external_id": "cy", "email": "cy@example.com", "fields": {"birthday": "2026-03-29"}},
    ]
    ids = upsert_customers(rows=rows)
    set_subscriptions(
        changes=[(ids[who], channel, "subscribed") for who in ("ada", "bob", "cy") for channel in CHANNELS]
    )
    payloads = [
        {"total": 10**30, "delivery_date": "9999-12-31", "at": "2026-03-28T23:00:00Z"},
        {"total": -1e308, "delivery_date": "0001-01-01T00:00:00", "deep": deep_payload},
        {"delivery_date": "2026-03-29", "at": "1000-01-01"},
    ]
    return ids, payloads


def every_port_wired(doc: dict) -> dict:
    """The document with every port of each node (not only its first) leading
    to the next node of the chain, so every run walks every node whichever
    branch, variant or exit it takes."""
    from flows.nodes import get_kind

    nodes = doc["nodes"]
    edges = [
        {"from": source["key"], "to": target["key"], "port": port}
        for source, target in zip(nodes, nodes[1:])
        for port in get_kind(source["kind"]).ports(source["config"])
    ]
    return {**doc, "edges": edges}


def _tick() -> dict[str, int]:
    counts = tick(deliver=False)
    assert error_count(counts) == 0, counts
    return counts


@settings(
    max_examples=int(os.environ.get("ENGINE_EXTREMES_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    doc=documents().map(every_port_wired),
    deep_field=nested(MAX_NESTING - 2),  # fields (1) > "deep" (2) > …
    deep_payload=nested(MAX_NESTING - 1),  # payload (1) > …
)
def test_every_valid_document_launches_and_ticks_through_a_century_without_an_error(
    db, doc, deep_field, deep_payload
):
    with transaction.atomic():
        with time_machine.travel(LAUNCHED - timedelta(hours=1), tick=False):
            _building_blocks()
            customers, payloads = _customers(deep_field, deep_payload)
            flow = lifecycle.create_flow(document=doc)
            assert flow.status == Flow.Status.READY, flow.draft.errors
            lifecycle.launch_flow(flow=flow, enqueue=False)
        with time_machine.travel(LAUNCHED, tick=False):
            counts = _tick()
            assert counts["launches_finished"] == 1
            flow.refresh_from_db()
            assert flow.status == Flow.Status.ACTIVE
            start = next(node for node in doc["nodes"] if node["kind"] in ("event", "schedule"))
            if start["kind"] == "event":
                store_events(
                    events=[
                        {
                            "customer_id": customer_id,
                            "type": start["config"]["event_type"],
                            # Now: young enough for any max_age (PT0.5S is valid).
                            "occurred_at": LAUNCHED,
                            "payload": payload,
                        }
                        for customer_id, payload in zip(customers.values(), payloads)
                    ]
                )
                _tick()
                settings_ = document_settings(doc)
                open_now = (
                    (settings_.start_at or LAUNCHED)
                    <= LAUNCHED
                    < (settings_.end_at or datetime.max.replace(tzinfo=UTC))
                )
                if open_now:
                    # Every event made a run (started, or refused at the door with
                    # its reason); an emit_event step of the same type makes more.
                    assert Run.objects.filter(flow=flow).count() >= len(customers), start
            else:
                # A valid recurrence always has a next fire (in at most 13 years).
                assert FlowVersion.objects.get(pk=flow.live_version_id).next_fire_at is not None
        moments = [LAUNCHED + delta for delta in LATER]
        if start["kind"] == "schedule":
            moments.append(
                FlowVersion.objects.get(pk=flow.live_version_id).next_fire_at + timedelta(seconds=1)
            )
        for moment in sorted(moments):
            with time_machine.travel(moment, tick=False):
                _tick()
        assert not Run.objects.filter(stop_reason="engine_error").exists()
        # What the examples reached (pytest --hypothesis-show-statistics).
        event(f"start: {start['kind']}")
        for status, reason in set(Run.objects.values_list("status", "stop_reason")):
            event(f"a run {status} {reason}".strip())
        for kind in set(NodePass.objects.values_list("kind", flat=True)):
            event(f"a run passed a {kind} node")
        transaction.set_rollback(True)
