"""Schedule starts (SPEC §5, §8): the first fire strictly after the launch,
audiences by segment and/or rule, missed fires merged into one, every N
weeks from the launch week, paused flows, and set-based entry."""

from datetime import timedelta

import pytest

from customers.models import Segment
from flows import lifecycle
from flows.engine.batch import EngineContext
from flows.engine.tick import tick
from flows.models import FlowVersion, LaunchRecord, Run
from flows.nodes.schedule.firing import fire_schedules
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, document, node, send, steps, utc

MONDAY_17 = utc(2026, 6, 1, 17, 0)  # 2026-06-01 is a Monday
DAILY_10 = {"every": "day", "at": "10:00"}


def scheduled(recurrence: dict, audience: dict, *, timezone: str = "UTC", **settings) -> dict:
    return document(
        [
            node("start", "schedule", recurrence=recurrence, timezone="flow", audience=audience),
            steps("mail", send("welcome")),
        ],
        [{"from": "start", "to": "mail"}],
        timezone=timezone,
        **settings,
    )


def version_of(flow) -> FlowVersion:
    return FlowVersion.objects.get(pk=flow.live_version_id)


@pytest.fixture
def members(welcome):
    """Two customers in the static segment "vip", one outside."""
    ann, bob, cid = kit.customer("ann"), kit.customer("bob"), kit.customer("cid")
    kit.static_segment("vip", [ann, bob])
    return {"ann": ann, "bob": bob, "cid": cid}


# --- First fire ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_flow_launched_after_todays_time_first_fires_tomorrow(members):
    with at(MONDAY_17):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}))
    assert version_of(flow).next_fire_at == utc(2026, 6, 2, 10, 0)
    assert kit.tick_at(MONDAY_17).get("schedules.fired") is None
    kit.tick_at(utc(2026, 6, 2, 9, 59))
    assert Run.objects.filter(flow=flow).count() == 0

    counts = kit.tick_at(utc(2026, 6, 2, 10, 0))
    assert counts["schedules.fired"] == 1
    assert counts["schedules.runs_started"] == 2
    runs = kit.runs_of(flow)
    assert sorted(run.customer_id for run in runs) == sorted([members["ann"], members["bob"]])
    for run in runs:
        assert run.clock == utc(2026, 6, 2, 10, 0) or run.status == Run.Status.COMPLETED
        assert run.trigger_event_id is None
        assert kit.path_of(run) == [("start", "next", ""), ("mail", "next", "")]
    assert version_of(flow).next_fire_at == utc(2026, 6, 3, 10, 0)
    assert kit.stats_of(flow)[("start", "entered")] == 2


@pytest.mark.django_db
def test_a_flow_launched_before_todays_time_fires_today_and_exactly_at_it_tomorrow(members):
    with at(utc(2026, 6, 1, 9, 0)):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}))
    assert version_of(flow).next_fire_at == utc(2026, 6, 1, 10, 0)
    with at(utc(2026, 6, 1, 10, 0)):
        other = kit.launch(scheduled(DAILY_10, {"segment": "vip"}, name="launched at ten"))
    # "Strictly after the launch": launched at 10:00 sharp, the first fire is tomorrow's.
    assert version_of(other).next_fire_at == utc(2026, 6, 2, 10, 0)


@pytest.mark.django_db
def test_the_schedule_reads_its_time_in_the_flow_zone(members):
    with at(MONDAY_17):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}, timezone="Europe/Berlin"))
    assert version_of(flow).next_fire_at == utc(2026, 6, 2, 8, 0)  # 10:00 CEST


# --- Audiences --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_audience_is_a_static_segment(members):
    with at(MONDAY_17):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}))
    kit.tick_at(utc(2026, 6, 2, 10, 0))
    assert {run.customer_id for run in kit.runs_of(flow)} == {members["ann"], members["bob"]}


@pytest.mark.django_db
def test_the_audience_is_a_rule_segment(welcome):
    with at(MONDAY_17):
        gold = kit.customer("gold", fields={"tier": "gold"})
        kit.customer("silver", fields={"tier": "silver"})
        Segment.objects.create(
            slug="gold-tier",
            name="Gold",
            kind=Segment.Kind.RULE,
            rule={"field": "customer.fields.tier", "op": "eq", "value": "gold"},
        )
        flow = kit.launch(scheduled(DAILY_10, {"segment": "gold-tier"}))
    kit.tick_at(utc(2026, 6, 2, 10, 0))
    assert [run.customer_id for run in kit.runs_of(flow)] == [gold]


@pytest.mark.django_db
def test_the_audience_is_a_rule(welcome):
    with at(MONDAY_17):
        big = kit.customer("big", fields={"spent": 500})
        kit.customer("small", fields={"spent": 20})
        flow = kit.launch(
            scheduled(DAILY_10, {"rule": {"field": "customer.fields.spent", "op": "gte", "value": 100}})
        )
    kit.tick_at(utc(2026, 6, 2, 10, 0))
    assert [run.customer_id for run in kit.runs_of(flow)] == [big]


@pytest.mark.django_db
def test_a_segment_and_a_rule_both_apply(members):
    with at(MONDAY_17):
        rule = {"field": "customer.external_id", "op": "ne", "value": "bob"}
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip", "rule": rule}))
    kit.tick_at(utc(2026, 6, 2, 10, 0))
    assert [run.customer_id for run in kit.runs_of(flow)] == [members["ann"]]


@pytest.mark.django_db
def test_the_audience_is_evaluated_at_each_fire(members):
    from customers.services import add_to_segment

    with at(MONDAY_17):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}))
    kit.tick_at(utc(2026, 6, 2, 10, 0))
    add_to_segment(slug="vip", customer_ids=[members["cid"]])
    kit.tick_at(utc(2026, 6, 3, 10, 0))
    assert len(kit.runs_of(flow, members["cid"])) == 1
    assert len(kit.runs_of(flow, members["ann"])) == 2


@pytest.mark.django_db
def test_the_launch_limit_applies_to_each_fire(members):
    with at(MONDAY_17):
        flow = kit.launch(
            scheduled(
                DAILY_10, {"segment": "vip"}, launch_limit={"mode": "once", "period": None, "max_total": None}
            )
        )
    kit.tick_at(utc(2026, 6, 2, 10, 0))
    counts = kit.tick_at(utc(2026, 6, 3, 10, 0))
    assert counts["schedules.fired"] == 1
    assert counts.get("schedules.runs_started", 0) == 0  # both launched already
    assert Run.objects.filter(flow=flow).count() == 2
    assert LaunchRecord.objects.filter(flow=flow, launches=1).count() == 2


# --- Missed fires -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_missed_fires_merge_into_one_at_the_latest_scheduled_time(members):
    with at(MONDAY_17):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}, launch_limit=None))
    # Nothing ran on Jun 2, 3 and 4 at 10:00; the next tick is Jun 4 at noon.
    counts = kit.tick_at(utc(2026, 6, 4, 12, 0))
    assert counts["schedules.fired"] == 1
    runs = kit.runs_of(flow)
    assert len(runs) == 2  # one fire, not three
    assert {run.entered_at for run in runs} == {utc(2026, 6, 4, 12, 0)}
    # The clock is the latest scheduled time; the steps ran within relevance.
    assert all(run.status == Run.Status.COMPLETED for run in runs)
    assert len(kit.messages_of(flow)) == 2
    assert version_of(flow).next_fire_at == utc(2026, 6, 5, 10, 0)


@pytest.mark.django_db
def test_a_merged_fire_starts_its_runs_at_the_scheduled_time(members):
    """Visible in the run clock when the run then waits: the wait counts from 10:00."""
    doc = document(
        [
            node("start", "schedule", recurrence=DAILY_10, audience={"segment": "vip"}),
            node("wait", "wait", mode="fixed", duration="PT4H"),
            steps("mail", send("welcome")),
        ],
        [{"from": "start", "to": "wait"}, {"from": "wait", "to": "mail"}],
    )
    with at(MONDAY_17):
        flow = kit.launch(doc)
    kit.tick_at(utc(2026, 6, 4, 12, 0))
    assert {run.due_at for run in kit.runs_of(flow)} == {utc(2026, 6, 4, 14, 0)}


# --- Every N weeks ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_two_weeks_counts_from_the_launch_week(members):
    recurrence = {"every": "week", "interval": 2, "weekdays": ["mon", "thu"], "at": "09:30"}
    with at(utc(2026, 6, 1, 8, 0)):  # Monday of week 0
        flow = kit.launch(scheduled(recurrence, {"segment": "vip"}))
    moment = utc(2026, 6, 1, 12, 0)
    while moment < utc(2026, 6, 30):
        kit.tick_at(moment)
        moment += timedelta(days=1)
    fires = sorted({run.entered_at.date().isoformat() for run in kit.runs_of(flow)})
    assert fires == ["2026-06-01", "2026-06-04", "2026-06-15", "2026-06-18", "2026-06-29"]


# --- Paused flows ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_paused_flow_does_not_fire_nor_catch_up_on_resume(members):
    with at(MONDAY_17):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}))
        flow = lifecycle.pause_flow(flow=flow)
    counts = kit.tick_at(utc(2026, 6, 2, 10, 0))
    assert counts["schedules.skipped"] == 1
    kit.tick_at(utc(2026, 6, 3, 10, 0))
    assert Run.objects.filter(flow=flow).count() == 0
    with at(utc(2026, 6, 3, 11, 0)):
        lifecycle.resume_flow(flow=flow)
        tick(deliver=False)
    assert Run.objects.filter(flow=flow).count() == 0  # the missed fires are gone
    kit.tick_at(utc(2026, 6, 4, 10, 0))
    assert {run.entered_at for run in kit.runs_of(flow)} == {utc(2026, 6, 4, 10, 0)}


@pytest.mark.django_db
def test_an_archived_flow_never_fires_again(members):
    with at(MONDAY_17):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}))
        lifecycle.archive_flow(flow=flow)
    kit.tick_at(utc(2026, 6, 2, 10, 0))
    assert Run.objects.filter(flow=flow).count() == 0
    assert version_of(flow).next_fire_at is None


@pytest.mark.django_db
def test_a_new_version_fires_on_its_own_schedule(members):
    from tests.flows.engine_kit import relaunch

    with at(MONDAY_17):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}))
        old = version_of(flow)
        flow = relaunch(flow, scheduled({"every": "day", "at": "18:00"}, {"segment": "vip"}))
    old.refresh_from_db()
    assert old.next_fire_at is None
    assert version_of(flow).next_fire_at == utc(2026, 6, 1, 18, 0)
    kit.tick_at(utc(2026, 6, 2, 10, 0))
    assert {run.entered_at for run in kit.runs_of(flow)} == {utc(2026, 6, 2, 10, 0)}
    assert {run.version_id for run in kit.runs_of(flow)} == {flow.live_version_id}


# --- Set-based entry ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_fire_inserts_its_runs_in_a_bounded_number_of_queries(welcome, django_assert_max_num_queries):
    kit.bulk_customers(2000, segment="everyone")
    with at(MONDAY_17):
        flow = kit.launch(scheduled(DAILY_10, {"segment": "everyone"}))
    with at(utc(2026, 6, 2, 10, 0)), django_assert_max_num_queries(14):
        counts = fire_schedules(ctx=EngineContext())
    assert counts == {"fired": 1, "runs_started": 2000}
    assert (
        Run.objects.filter(flow=flow, status=Run.Status.ACTIVE, clock=utc(2026, 6, 2, 10, 0)).count() == 2000
    )
    assert kit.stats_of(flow)[("start", "entered")] == 2000


# --- An audience that went away -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_deleted_audience_segment_skips_the_fire_without_stopping_the_tick(members):
    from tests.flows.engine_kit import chain, event_start, post_event

    with at(MONDAY_17):
        scheduled_flow = kit.launch(scheduled(DAILY_10, {"segment": "vip"}))
        event_flow = kit.launch(
            document([event_start("order_created"), steps("mail", send("welcome"))], chain("start", "mail"))
        )
    Segment.objects.filter(slug="vip").delete()
    with at(utc(2026, 6, 2, 10, 0)):
        post_event(members["cid"], occurred_at=utc(2026, 6, 2, 10, 0))
        counts = tick(deliver=False)
    assert counts["schedules.audience_missing"] == 1
    assert Run.objects.filter(flow=scheduled_flow).count() == 0
    assert version_of(scheduled_flow).next_fire_at == utc(2026, 6, 3, 10, 0)
    # The rest of the tick went on.
    assert [run.status for run in kit.runs_of(event_flow)] == [Run.Status.COMPLETED]
