"""Batch-first steps (one bulk call per action, whatever the audience) and
steps in test mode."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from channels.models import Message, Template
from customers.models import Customer, Event, PointsEntry, PromoCode, Segment, SegmentMembership, Subscription
from customers.services import store_events
from flows.engine.actions import TEST_PROMO_CODE, execute_group
from flows.engine.batch import Batch, BatchData, EngineContext, RunState
from flows.engine.tick import tick
from flows.models import LaunchRecord, Run
from tests.flows import engine_kit as kit
from tests.flows.conftest import steps_document

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)

EVERY_ACTION = [
    {"action": "issue_promo_code", "pool": "bulk"},
    {"action": "points", "amount": 10, "expires_in": "P30D", "reason": "bulk"},
    {"action": "set_field", "field": "vip", "value": True},
    {"action": "set_field", "field": "plan", "value": "{{ event.plan }}-{{ promo_code }}"},
    {"action": "set_field", "field": "first_name", "value": "{{ customer.first_name|title }}"},
    {"action": "add_to_segment", "segment": "vip"},
    {"action": "remove_from_segment", "segment": "new"},
    {"action": "emit_event", "event_type": "bulk_done", "payload": {"n": 1}},
    {"action": "send", "channel": "email", "template": "bulk-mail"},
]


@pytest.fixture
def building_blocks(db):
    kit.template("bulk-mail", subject="Hi {{ customer.first_name }}", text="{{ promo_code }}")
    kit.promo_pool("bulk", codes=4000)
    Segment.objects.create(slug="vip", name="VIP")
    Segment.objects.create(slug="new", name="New")


def runs_at_steps(*, flow, prefix: str, n: int) -> list[RunState]:
    """n subscribed customers, each with a trigger event and a run standing at "act"."""
    created = Customer.objects.bulk_create(
        [
            Customer(external_id=f"{prefix}{i}", email=f"{prefix}{i}@example.com", first_name="ann")
            for i in range(n)
        ]
    )
    ids = sorted(
        Customer.objects.filter(external_id__in=[c.external_id for c in created]).values_list("id", flat=True)
    )
    Subscription.objects.bulk_create(
        [Subscription(customer_id=cid, channel="email", status="subscribed") for cid in ids]
    )
    new = Segment.objects.get(slug="new")
    SegmentMembership.objects.bulk_create([SegmentMembership(segment=new, customer_id=cid) for cid in ids])
    event_ids = store_events(
        events=[
            {"customer_id": cid, "type": "order_created", "occurred_at": NOW, "payload": {"plan": "pro"}}
            for cid in ids
        ]
    )["ids"]
    # Entered, and due, at NOW: standing at the steps node "act".
    moments = dict.fromkeys(("due_at", "clock", "node_clock", "node_entered_at", "entered_at"), NOW)
    at_act = {"flow": flow, "version_id": flow.live_version_id, "node_key": "act", "seq": 1, **moments}
    pairs = zip(ids, event_ids, strict=True)
    Run.objects.bulk_create(
        [Run(customer_id=cid, trigger_event_id=event_id, **at_act) for cid, event_id in pairs]
    )
    return [
        RunState(**row)
        for row in Run.objects.filter(customer_id__in=ids).order_by("id").values(*RunState.FIELDS)
    ]


def group_queries(*, flow, prefix: str, n: int) -> list[str]:
    """The SQL of executing the steps group for n runs (their shared rows loaded inside)."""
    runs = runs_at_steps(flow=flow, prefix=prefix, n=n)
    ctx = EngineContext(now=NOW)
    graph = ctx.graph(flow.live_version_id)
    batch = Batch(ctx=ctx, graph=graph, node=graph.nodes["act"], runs=runs, shared=BatchData(runs))
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        result = execute_group(batch=batch, runs=runs)
    assert result.failed == {}
    # Every action did its work for every run.
    ids = [run.customer_id for run in runs]
    assert PromoCode.objects.filter(customer_id__in=ids).count() == n
    assert PointsEntry.objects.filter(customer_id__in=ids).count() == n
    assert Customer.objects.filter(id__in=ids, fields__vip=True, first_name="Ann").count() == n
    assert SegmentMembership.objects.filter(customer_id__in=ids, segment__slug="vip").count() == n
    assert SegmentMembership.objects.filter(customer_id__in=ids, segment__slug="new").count() == 0
    assert Event.objects.filter(customer_id__in=ids, type="bulk_done", depth=1).count() == n
    assert Message.objects.filter(customer_id__in=ids, status="queued").count() == n
    return [query["sql"] for query in captured.captured_queries]


def shape(queries: list[str]) -> list[str]:
    """The statements without their literals and savepoint names, to compare two runs."""
    shapes = []
    for sql in queries:
        sql = re.sub(r"'(?:[^']|'')*'", "?", sql)  # PostgreSQL's captured SQL inlines the parameters
        shapes.append(re.sub(r"\d+", "N", sql)[:200])
    return shapes


def outbox_inserts(queries: list[str]) -> list[str]:
    return [sql for sql in queries if re.match(r'INSERT (OR IGNORE )?INTO "channels_message"', sql)]


def test_a_group_of_every_action_takes_the_same_queries_for_1000_and_3000_runs(building_blocks, launched):
    flow = launched(steps_document(EVERY_ACTION))
    with time_machine.travel(NOW, tick=False):
        small = group_queries(flow=flow, prefix="s", n=1000)
        large = group_queries(flow=flow, prefix="l", n=3000)
    # The outbox is one INSERT … SELECT over a JSON parameter on both
    # databases (no bulk_create chunks of 999 variables on SQLite).
    assert len(outbox_inserts(small)) == len(outbox_inserts(large)) == 1
    assert len(small) == len(large), (len(small), len(large))
    assert shape(small) == shape(large)
    # One statement (or read) per action, not per customer: a few dozen in all.
    assert len(small) < 60


# --- test mode -------------------------------------------------------------------------


def test_a_test_run_renders_its_messages_and_changes_nothing_real(
    building_blocks, launched, post_events, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    launched(steps_document(EVERY_ACTION), test=True)
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"], payload={"plan": "pro"})
        Customer.objects.filter(external_id="ann").update(email="ann@example.com", first_name="ann")
        new = Segment.objects.get(slug="new")
        ann = Customer.objects.get(external_id="ann")
        SegmentMembership.objects.create(segment=new, customer=ann)
        tick()
    run = Run.objects.get(customer=ann)
    assert (run.is_test, run.status, run.launched) == (True, "completed", False)
    message = Message.objects.get()
    assert (message.status, message.reason, message.is_test) == ("not_sent", "test_mode", True)
    # Rendered for the tester, with a stand-in code; no subscription, so a live
    # send would not have gone out either.
    assert message.rendered["subject"] == "Hi ann"
    assert message.rendered["text"] == TEST_PROMO_CODE
    assert message.rendered["test_verdict"] == "not_subscribed"
    assert mail.outbox == []
    ann.refresh_from_db()
    assert (ann.first_name, ann.fields) == ("ann", {})
    assert not PromoCode.objects.filter(customer__isnull=False).exists()
    assert not PointsEntry.objects.exists()
    assert list(SegmentMembership.objects.values_list("segment__slug", flat=True)) == ["new"]
    assert not Event.objects.filter(type="bulk_done").exists()
    assert not LaunchRecord.objects.filter(launches__gt=0).exists()


def test_a_template_error_stops_a_test_run_too(launched, post_events):
    Template.objects.create(slug="bad", name="Bad", channel="email", subject="S", text="fine")
    launched(steps_document([{"action": "send", "channel": "email", "template": "bad"}]), test=True)
    # Broken after the launch, as a row saved before templates were checked on save.
    Template.objects.filter(slug="bad").update(text="{% if %}")
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"])
        tick()
    run = Run.objects.get()
    assert (run.is_test, run.status, run.stop_reason) == (True, "stopped", "template_error")
