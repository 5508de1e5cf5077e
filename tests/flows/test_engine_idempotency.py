"""Re-processing a batch changes nothing twice (SPEC §7, DESIGN "unique keys make
every step idempotent").

Two ways to process the same work again: hand move_batch/write_batch the very
rows it processed before (a worker whose claim was re-issued after it had
committed), or put the runs back where they stood and tick again."""

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import transaction

from channels.models import Message
from customers.models import PointsEntry, PromoCode, PromoPool
from flows.engine.batch import EngineContext
from flows.engine.entry import start_flow_for_segment
from flows.engine.move import claim_due_runs, move_batch, write_batch
from flows.engine.tick import tick
from flows.models import LaunchRecord, LimitationCounter, LimitationGrant, NodePass, NodeStat, Run
from tests.flows.engine_builders import chained, document, email_template, event_start, make_customers
from tests.flows.engine_kit import edge, launch, node, send, static_segment, steps

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
AUDIENCE = 30


@pytest.fixture
def shop(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    email_template("hello")
    email_template("again")
    pool = PromoPool.objects.create(slug="welcome", name="Welcome")
    PromoCode.objects.bulk_create([PromoCode(pool=pool, code=f"W{n:03}") for n in range(AUDIENCE * 2)])
    ids = make_customers(AUDIENCE)
    static_segment("everyone", ids)
    return ids


def gift_flow(*, launch_limit: dict | None = None):
    """start → give (email + promo code + points) → one hour → again (email)."""
    give = steps(
        "give",
        send("hello"),
        {"action": "issue_promo_code", "pool": "welcome"},
        {"action": "points", "amount": 100, "expires_in": None, "reason": "welcome"},
    )
    hour = node("hour", "wait", mode="fixed", duration="PT1H")
    return launch(chained(give, hour, steps("again", send("again")), launch_limit=launch_limit))


def process_twice(*, now: datetime) -> tuple[list, list]:
    """Claim and process one batch, commit; then process the same loaded rows
    again in a new transaction, as a worker with a stale claim would."""
    with time_machine.travel(now, tick=False):
        ctx = EngineContext()
        with transaction.atomic():
            runs = claim_due_runs(ctx=ctx, limit=1000)
            stale = copy.deepcopy(runs)
            write_batch(runs, move_batch(runs, ctx=ctx))
        with transaction.atomic():
            write_batch(stale, move_batch(stale, ctx=EngineContext()))
    return runs, stale


def stats(flow) -> Counter:
    return Counter(
        {
            (node_key, metric): count
            for node_key, metric, count in NodeStat.objects.filter(flow=flow).values_list(
                "node_key", "metric", "count"
            )
        }
    )


def assert_given_once(flow, customer_ids):
    assert Message.objects.filter(flow_id=flow.pk, node_key="give").count() == AUDIENCE
    assert sorted(
        Message.objects.filter(flow_id=flow.pk, node_key="give").values_list("customer_id", flat=True)
    ) == (customer_ids)
    issued = PromoCode.objects.filter(issued_at__isnull=False)
    assert issued.count() == AUDIENCE
    assert sorted(issued.values_list("customer_id", flat=True)) == customer_ids
    assert PointsEntry.objects.count() == AUDIENCE
    assert sorted(PointsEntry.objects.values_list("customer_id", flat=True)) == customer_ids
    assert list(LaunchRecord.objects.filter(flow=flow).values_list("launches", flat=True)) == [1] * AUDIENCE


def test_it_does_nothing_twice_when_a_committed_batch_is_processed_again(shop):
    with time_machine.travel(T0, tick=False):
        flow = gift_flow()
        start_flow_for_segment(flow=flow, segment_slug="everyone")

    runs, stale = process_twice(now=T0)

    assert len(runs) == AUDIENCE
    assert_given_once(flow, shop)
    # One pass per (run, pass_no), and stats counted once.
    assert NodePass.objects.filter(run__flow=flow).count() == 2 * AUDIENCE
    assert stats(flow) == Counter(
        {
            ("start", "entered"): AUDIENCE,
            ("start", "exit:next"): AUDIENCE,
            ("give", "entered"): AUDIENCE,
            ("give", "exit:next"): AUDIENCE,
            ("hour", "entered"): AUDIENCE,
        }
    )
    # The second processing came to the same verdict: every run waits an hour.
    assert set(
        Run.objects.filter(flow=flow).values_list("status", "node_key", "due_at", "seq", "launched")
    ) == {(Run.Status.WAITING, "hour", T0 + timedelta(hours=1), 2, True)}


def test_a_once_flow_keeps_its_launch_when_the_batch_is_processed_again(shop):
    """The atomic launch re-check must recognise the run that already holds
    the launch, or the stale pass would stop it as frequency-limited."""
    with time_machine.travel(T0, tick=False):
        flow = gift_flow(launch_limit={"mode": "once", "period": None, "max_total": None})
        start_flow_for_segment(flow=flow, segment_slug="everyone")

    process_twice(now=T0)

    assert_given_once(flow, shop)
    assert not Run.objects.filter(flow=flow, status=Run.Status.STOPPED).exists()
    assert Run.objects.filter(flow=flow, status=Run.Status.WAITING).count() == AUDIENCE


def test_it_sends_each_message_once_when_runs_are_put_back_and_ticked_again(shop):
    with time_machine.travel(T0, tick=False):
        flow = gift_flow()
        start_flow_for_segment(flow=flow, segment_slug="everyone")
        before = list(Run.objects.filter(flow=flow))
        tick()
        assert len(mail.outbox) == AUDIENCE
        Run.objects.bulk_update(
            before, ["status", "node_key", "due_at", "clock", "node_clock", "seq", "launched"]
        )
        assert Run.objects.filter(flow=flow, node_key="start").count() == AUDIENCE
        tick()
    assert len(mail.outbox) == AUDIENCE
    assert_given_once(flow, shop)

    # Across the wait, the same again for the second group.
    later = T0 + timedelta(hours=1, minutes=1)
    with time_machine.travel(later, tick=False):
        before = list(Run.objects.filter(flow=flow))
        tick()
        Run.objects.bulk_update(
            before, ["status", "node_key", "due_at", "clock", "node_clock", "seq", "ended_at", "stop_reason"]
        )
        assert Run.objects.filter(flow=flow, status=Run.Status.WAITING).count() == AUDIENCE
        tick()
    assert len(mail.outbox) == 2 * AUDIENCE
    assert Message.objects.filter(flow_id=flow.pk, node_key="again").count() == AUDIENCE
    assert Run.objects.filter(flow=flow, status=Run.Status.COMPLETED).count() == AUDIENCE
    assert NodePass.objects.filter(run__flow=flow).count() == 4 * AUDIENCE
    assert stats(flow)[("again", "exit:next")] == AUDIENCE
    assert stats(flow)[("again", "entered")] == AUDIENCE
    assert_given_once(flow, shop)


def test_a_splitter_draws_the_same_branch_when_the_batch_is_processed_again(shop):
    email_template("left")
    email_template("right")
    with time_machine.travel(T0, tick=False):
        split = node(
            "split", "splitter", branches=[{"name": "a", "percent": 50}, {"name": "b", "percent": 50}]
        )
        nodes = [event_start("never"), split, steps("left", send("left")), steps("right", send("right"))]
        edges = [edge("start", "split"), edge("split", "left", "a"), edge("split", "right", "b")]
        flow = launch(document(nodes, edges))
        start_flow_for_segment(flow=flow, segment_slug="everyone")
    process_twice(now=T0)

    assert Message.objects.filter(flow_id=flow.pk).count() == AUDIENCE
    ports = Counter(NodePass.objects.filter(run__flow=flow, node_key="split").values_list("port", flat=True))
    assert sum(ports.values()) == AUDIENCE
    assert ports["a"] == Message.objects.filter(flow_id=flow.pk, node_key="left").count()
    assert 0 < ports["a"] < AUDIENCE  # both branches drawn: the check above means something


def limited_flow_processed_twice(*, wired: bool):
    """start → limit (10) → within: a condition nobody meets; its yes port leads
    to the steps only when `wired`, so unwired the run ends without a launch.
    Launched, started for everyone and its batch processed twice."""
    nodes = [
        event_start("never"),
        node("cap", "limitation", max=10, period=None, alert_below=None),
        node("vip", "condition", rule={"field": "customer.fields.vip", "op": "eq", "value": True}),
        steps("give", send("hello")),
    ]
    edges = [edge("start", "cap"), edge("cap", "vip", "within"), edge("cap", "give", "beyond")]
    if wired:
        edges.append(edge("vip", "give", "no"))
    with time_machine.travel(T0, tick=False):
        flow = launch(document(nodes, edges))
        start_flow_for_segment(flow=flow, segment_slug="everyone")
    process_twice(now=T0)
    return flow


def test_limitation_places_are_granted_once_when_the_batch_is_processed_again(shop):
    flow = limited_flow_processed_twice(wired=True)

    counter = LimitationCounter.objects.get(flow=flow, node_key="cap")
    assert counter.used == 10
    assert LimitationGrant.objects.filter(counter=counter, state=LimitationGrant.State.CONSUMED).count() == 10
    assert Message.objects.filter(flow_id=flow.pk).count() == AUDIENCE  # within and beyond both reach "give"
    ports = Counter(NodePass.objects.filter(run__flow=flow, node_key="cap").values_list("port", flat=True))
    assert ports == Counter({"within": 10, "beyond": AUDIENCE - 10})


def test_places_given_back_stay_given_back_when_the_batch_is_processed_again(shop):
    flow = limited_flow_processed_twice(wired=False)

    counter = LimitationCounter.objects.get(flow=flow, node_key="cap")
    assert counter.used == 0
    assert not LimitationGrant.objects.exists()
    # The 10 within ended at the unwired "no" port; the 20 beyond got the message.
    assert Message.objects.filter(flow_id=flow.pk).count() == AUDIENCE - 10
    assert Run.objects.filter(flow=flow, status=Run.Status.COMPLETED).count() == AUDIENCE


def test_an_emit_event_step_emits_once_when_the_batch_is_processed_again(shop):
    from customers.models import Event

    with time_machine.travel(T0, tick=False):
        flow = launch(
            document(
                [
                    event_start("never"),
                    steps("tell", {"action": "emit_event", "event_type": "told", "payload": {}}),
                ],
                [edge("start", "tell")],
            )
        )
        start_flow_for_segment(flow=flow, segment_slug="everyone")
    process_twice(now=T0)
    assert Event.objects.filter(type="told").count() == AUDIENCE
