"""The non-send step actions through a launched flow and flows.engine.tick.tick():
promo codes, points, set_field, static segments and emitted events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from channels.models import Message, Template
from customers.models import Customer, Event, PointsEntry, PromoCode, PromoPool, Segment, SegmentMembership
from customers.services import add_promo_codes, points_balances
from flows.engine.tick import tick
from flows.models import LaunchRecord, NodePass, NodeStat, Run
from tests.flows.conftest import steps_document
from tests.flows.engine_kit import customer, send

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)
ISSUE_SPRING = {"action": "issue_promo_code", "pool": "spring"}


def customers(*external_ids: str, **fields) -> list[Customer]:
    """Subscribed customers named after their external ids, in that order."""
    for external_id in external_ids:
        profile = {"first_name": external_id.title(), "subscriptions": {"email": "subscribed"}, **fields}
        customer(external_id, **profile)
    return list(Customer.objects.filter(external_id__in=external_ids).order_by("id"))


@pytest.fixture
def run_once(launched, post_events):
    """Launch a steps flow, post one event for each of `who` at NOW, tick once."""

    def run(steps: list[dict], *, who: list[str], payload=None, **doc) -> dict:
        launched(steps_document(steps, **doc))
        with time_machine.travel(NOW, tick=False):
            post_events(who, payload=payload)
            return tick()

    return run


def fields_of(external_id: str) -> dict:
    return Customer.objects.get(external_id=external_id).fields


@pytest.fixture
def pool(db):
    def make(slug: str, codes: list[str]) -> PromoPool:
        pool = PromoPool.objects.create(slug=slug, name=slug)
        add_promo_codes(pool_slug=slug, codes=codes)
        return pool

    return make


# --- issue_promo_code ---------------------------------------------------------------


def test_each_customer_gets_its_own_code_and_later_steps_see_it(pool, run_once):
    pool("spring", ["S-1", "S-2", "S-3"])
    ann, bob = customers("ann", "bob")
    run_once(
        [
            ISSUE_SPRING,
            {"action": "set_field", "field": "last_code", "value": "{{ promo_code }}"},
        ],
        who=["ann", "bob"],
    )
    issued = dict(PromoCode.objects.filter(customer__isnull=False).values_list("customer_id", "code"))
    assert sorted(issued.values()) == ["S-1", "S-2"]
    assert fields_of("ann")["last_code"] == issued[ann.pk]
    assert fields_of("bob")["last_code"] == issued[bob.pk]
    assert PromoCode.objects.filter(customer__isnull=True).count() == 1


def test_an_empty_pool_fails_the_step_stops_the_run_and_is_no_launch(pool, run_once):
    pool("spring", ["ONLY-1"])
    Template.objects.create(slug="code", name="Code", channel="email", subject="S", text="{{ promo_code }}")
    ann, bob = customers("ann", "bob")
    run_once([ISSUE_SPRING, send("code")], who=["ann", "bob"])
    # Codes go out in run order: ann's run was created first.
    done, failed = Run.objects.get(customer=ann), Run.objects.get(customer=bob)
    assert (done.status, done.launched) == ("completed", True)
    assert (failed.status, failed.stop_reason, failed.launched) == ("stopped", "promo_pool_empty", False)
    assert list(Message.objects.values_list("customer_id", "rendered__text")) == [(ann.pk, "ONLY-1")]
    assert dict(LaunchRecord.objects.values_list("customer_id", "launches")) == {ann.pk: 1, bob.pk: 0}
    assert NodeStat.objects.get(node_key="act", metric="stop:promo_pool_empty").count == 1
    assert NodePass.objects.get(run=failed, node_key="act").stop_reason == "promo_pool_empty"


def test_a_pool_deleted_after_launch_fails_the_step(pool, launched, post_events):
    pool("spring", ["S-1"])
    customers("ann")
    launched(steps_document([ISSUE_SPRING]))
    PromoPool.objects.filter(slug="spring").delete()
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"])
        tick()
    run = Run.objects.get()
    assert (run.status, run.stop_reason) == ("stopped", "promo_pool_missing")


def test_a_condition_reads_the_pool_stock(pool, launched, post_events):
    pool("spring", ["S-1"])
    customers("ann", "bob")
    document = steps_document(
        [],
        nodes=[
            {"key": "start", "kind": "event", "config": {"event_type": "order_created"}},
            {
                "key": "stock",
                "kind": "condition",
                "config": {"rule": {"field": "promo_pool.spring.available", "op": "gt", "value": 0}},
            },
            {
                "key": "act",
                "kind": "steps",
                "config": {"relevance": "P1D", "steps": [ISSUE_SPRING]},
            },
            {
                "key": "sorry",
                "kind": "steps",
                "config": {
                    "relevance": "P1D",
                    "steps": [{"action": "set_field", "field": "missed_sale", "value": True}],
                },
            },
        ],
        edges=[
            {"from": "start", "to": "stock"},
            {"from": "stock", "port": "yes", "to": "act"},
            {"from": "stock", "port": "no", "to": "sorry"},
        ],
    )
    launched(document)
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"])
        tick()
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        post_events(["bob"])
        tick()
    ports = dict(NodePass.objects.filter(node_key="stock").values_list("run__customer__external_id", "port"))
    assert ports == {"ann": "yes", "bob": "no"}
    assert PromoCode.objects.get().customer.external_id == "ann"
    assert fields_of("bob") == {"missed_sale": True}
    assert Run.objects.filter(status="completed").count() == 2


# --- points -----------------------------------------------------------------------------


def test_points_add_and_deduct_with_expiry_from_now_in_the_flow_time_zone(launched, post_events):
    (ann,) = customers("ann")
    launched(
        steps_document(
            [
                {"action": "points", "amount": 100, "expires_in": "P30D", "reason": "welcome bonus"},
                {"action": "points", "amount": -30, "expires_in": None, "reason": "fee"},
                {"action": "points", "amount": 7},
            ],
            timezone="Europe/Berlin",
        )
    )
    with time_machine.travel(NOW, tick=False):
        # The event is six hours old: expiry counts from now, not from the run's clock.
        post_events(["ann"], occurred_at=NOW - timedelta(hours=6))
        tick()
        assert points_balances(customer_ids=[ann.pk]) == {ann.pk: 77}
    entries = list(PointsEntry.objects.order_by("id").values_list("amount", "reason", "expires_at"))
    # 11:00 CET plus 30 days is 11:00 CEST (Berlin went to summer time on Mar 29): 09:00 UTC.
    assert entries == [
        (100, "welcome bonus", datetime(2026, 4, 19, 9, 0, tzinfo=UTC)),
        (-30, "fee", None),
        (7, "flow Spring sale", None),
    ]
    with time_machine.travel(datetime(2026, 4, 19, 8, 59, tzinfo=UTC), tick=False):
        assert points_balances(customer_ids=[ann.pk]) == {ann.pk: 77}
    with time_machine.travel(datetime(2026, 4, 19, 9, 0, tzinfo=UTC), tick=False):
        assert points_balances(customer_ids=[ann.pk]) == {ann.pk: -23}


def test_reprocessing_the_same_pass_writes_nothing_twice(pool, smtp_server, run_once):
    pool("spring", ["S-1", "S-2"])
    Template.objects.create(slug="code", name="Code", channel="email", subject="S", text="{{ promo_code }}")
    (ann,) = customers("ann")
    run_once([ISSUE_SPRING, {"action": "points", "amount": 50}, send("code")], who=["ann"])
    run = Run.objects.get()
    pass_at_steps = NodePass.objects.get(run=run, node_key="act").pass_no
    # As if the batch were processed again (a worker that died after its writes):
    # the run stands at the same node in the same pass.
    Run.objects.filter(pk=run.pk).update(
        status="active", node_key="act", seq=pass_at_steps, due_at=NOW, ended_at=None
    )
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        tick()
    assert points_balances(customer_ids=[ann.pk]) == {ann.pk: 50}
    assert list(PromoCode.objects.filter(customer=ann).values_list("code", flat=True)) == ["S-1"]
    assert Message.objects.count() == 1
    assert len(smtp_server.envelopes) == 1


def test_a_run_passing_the_steps_again_gets_points_again(post_events, run_once):
    (ann,) = customers("ann")
    run_once([{"action": "points", "amount": 10}], who=["ann"])
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        post_events(["ann"])
        tick()
    assert points_balances(customer_ids=[ann.pk]) == {ann.pk: 20}


# --- set_field ------------------------------------------------------------------------------


def test_set_field_writes_literals_into_fields_and_profile(run_once):
    customers("ann", "bob", fields={"keep": "me", "vip": False})
    run_once(
        [
            {"action": "set_field", "field": "vip", "value": True},
            {"action": "set_field", "field": "prefs", "value": {"news": ["weekly"], "n": 2}},
            {"action": "set_field", "field": "first_name", "value": "Friend"},
            {"action": "set_field", "field": "timezone", "value": "Europe/Berlin"},
        ],
        who=["ann", "bob"],
    )
    for external_id in ("ann", "bob"):
        customer = Customer.objects.get(external_id=external_id)
        assert customer.fields == {"keep": "me", "vip": True, "prefs": {"news": ["weekly"], "n": 2}}
        assert (customer.first_name, customer.timezone) == ("Friend", "Europe/Berlin")


def test_set_field_renders_a_template_per_customer(launched, post_events):
    customers("ann", "bob")
    launched(
        steps_document(
            [
                {"action": "set_field", "field": "plan", "value": "{{ event.plan }}"},
                {"action": "set_field", "field": "last_name", "value": "{{ customer.first_name|upper }}"},
                {
                    "action": "set_field",
                    "field": "note",
                    "value": "{% if event.plan == 'pro' %}upsell{% else %}{{ flow.name }}{% endif %}",
                },
                {"action": "set_field", "field": "literal", "value": "50% off {not a template}"},
            ]
        )
    )
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"], payload={"plan": "pro"})
        post_events(["bob"], payload={"plan": "basic"})
        tick()
    ann, bob = Customer.objects.get(external_id="ann"), Customer.objects.get(external_id="bob")
    assert ann.fields == {"plan": "pro", "note": "upsell", "literal": "50% off {not a template}"}
    assert bob.fields == {"plan": "basic", "note": "Spring sale", "literal": "50% off {not a template}"}
    assert (ann.last_name, bob.last_name) == ("ANN", "BOB")


def test_set_field_template_error_and_refused_value_fail_only_those_runs(launched, post_events):
    customers("ann", "bob", "cem")
    launched(
        steps_document(
            [
                {"action": "set_field", "field": "timezone", "value": "{{ event.tz }}"},
                {"action": "set_field", "field": "width", "value": "{{ event.text|ljust:event.width }}"},
                {"action": "points", "amount": 1},
            ]
        )
    )
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"], payload={"tz": "Europe/Paris", "text": "x", "width": 2})
        post_events(["bob"], payload={"tz": "Mars/Olympus", "text": "x", "width": 2})
        post_events(["cem"], payload={"tz": "Asia/Tokyo", "text": "x", "width": 10_000})
        tick()
    runs = {run.customer.external_id: run for run in Run.objects.select_related("customer")}
    assert (runs["ann"].status, runs["ann"].stop_reason) == ("completed", "")
    assert (runs["bob"].status, runs["bob"].stop_reason) == ("stopped", "invalid_field_value")
    assert (runs["cem"].status, runs["cem"].stop_reason) == ("stopped", "template_error")
    zones = dict(Customer.objects.values_list("external_id", "timezone"))
    assert zones == {"ann": "Europe/Paris", "bob": "", "cem": "Asia/Tokyo"}
    assert fields_of("ann") == {"width": "x "}
    assert "width" not in fields_of("cem")
    assert list(PointsEntry.objects.values_list("customer__external_id", flat=True)) == ["ann"]
    assert dict(LaunchRecord.objects.values_list("customer__external_id", "launches")) == {
        "ann": 1,
        "bob": 0,
        "cem": 0,
    }


# --- segments -----------------------------------------------------------------------------------


def test_static_segment_membership_is_added_and_removed(run_once):
    vip = Segment.objects.create(slug="vip", name="VIP")
    new = Segment.objects.create(slug="newcomers", name="New")
    ann, bob, cem = customers("ann", "bob", "cem")
    SegmentMembership.objects.create(segment=new, customer=ann)
    SegmentMembership.objects.create(segment=new, customer=cem)
    SegmentMembership.objects.create(segment=vip, customer=bob)
    run_once(
        [
            {"action": "add_to_segment", "segment": "vip"},
            {"action": "remove_from_segment", "segment": "newcomers"},
        ],
        who=["ann", "bob"],
    )
    members = {
        slug: set(
            SegmentMembership.objects.filter(segment__slug=slug).values_list(
                "customer__external_id", flat=True
            )
        )
        for slug in ("vip", "newcomers")
    }
    assert members == {"vip": {"ann", "bob"}, "newcomers": {"cem"}}
    assert Run.objects.filter(status="completed").count() == 2


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda: Segment.objects.filter(slug="vip").delete(), "segment_missing"),
        (
            lambda: Segment.objects.filter(slug="vip").update(
                kind="rule", rule={"field": "points", "op": "gt", "value": 0}
            ),
            "segment_not_static",
        ),
    ],
)
def test_a_segment_changed_after_launch_fails_the_step(launched, post_events, change, reason):
    Segment.objects.create(slug="vip", name="VIP")
    customers("ann")
    launched(steps_document([{"action": "add_to_segment", "segment": "vip"}]))
    change()
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"])
        tick()
    run = Run.objects.get()
    assert (run.status, run.stop_reason) == ("stopped", reason)
    assert not SegmentMembership.objects.exists()


# --- emit_event -------------------------------------------------------------------------------------


def test_an_emitted_event_starts_another_flow_in_the_same_tick(launched, post_events):
    customers("ann")
    launched(
        steps_document(
            [{"action": "emit_event", "event_type": "vip_candidate", "payload": {"source": "orders"}}],
            name="Orders",
        )
    )
    launched(
        steps_document(
            [{"action": "set_field", "field": "vip_source", "value": "{{ event.source }}"}],
            name="VIP",
            event_type="vip_candidate",
        )
    )
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"])
        counts = tick()
    assert counts["events.runs_started"] == 2
    emitted = Event.objects.get(type="vip_candidate")
    assert (emitted.depth, emitted.payload, emitted.occurred_at) == (1, {"source": "orders"}, NOW)
    # Keyed by the emitting step's pass (run:node:step:pass): emitted once, even if re-processed.
    source_run = Run.objects.exclude(flow__name="VIP").get()
    assert (
        emitted.external_id
        == f"emit:{source_run.pk}:act:0:{NodePass.objects.get(run=source_run, node_key='act').pass_no}"
    )
    assert emitted.processed_at == NOW
    vip_run = Run.objects.get(flow__name="VIP")
    assert (vip_run.trigger_event_id, vip_run.status) == (emitted.pk, "completed")
    assert fields_of("ann") == {"vip_source": "orders"}


def test_each_run_emits_its_own_event(launched, post_events):
    customers("ann")
    launched(steps_document([{"action": "emit_event", "event_type": "ordered_again"}]))
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"])
        post_events(["ann"])
        tick()
    assert Event.objects.filter(type="ordered_again").count() == 2


def test_a_chain_of_flows_stops_at_the_maximum_event_depth(settings, launched, post_events):
    settings.MAESTRA_MAX_EVENT_DEPTH = 3
    (ann,) = customers("ann")
    launched(steps_document([{"action": "emit_event", "event_type": "pong"}], name="Ping", event_type="ping"))
    launched(steps_document([{"action": "emit_event", "event_type": "ping"}], name="Pong", event_type="pong"))
    with time_machine.travel(NOW, tick=False):
        post_events(["ann"], event_type="ping")
        tick()
    chain = list(Event.objects.filter(customer=ann, type__in=("ping", "pong")).order_by("id"))
    assert [(e.type, e.depth) for e in chain] == [("ping", 0), ("pong", 1), ("ping", 2), ("pong", 3)]
    assert all(e.processed_at == NOW for e in chain)
    # Four runs, each launched; the fourth one's event (depth 4) was dropped.
    assert Run.objects.filter(status="completed", launched=True).count() == 4
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        tick()
    assert Run.objects.count() == 4
