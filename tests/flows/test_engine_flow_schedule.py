"""The flow schedule, start_at/end_at (SPEC §8): before start_at nothing
enters; after end_at the flow behaves as stopped (runs stay where they are
and execute no steps); moving end_at later in a new version lets them go on."""

from datetime import timedelta

import pytest

from customers.models import Event
from flows.engine.entry import start_flow_for_segment
from flows.engine.tick import tick
from flows.models import Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, chain, document, event_start, node, send, steps, utc

JUN_1 = utc(2026, 6, 1, 9, 0)
START_AT = utc(2026, 6, 5, 0, 0)
END_AT = utc(2026, 6, 1, 12, 0)


def flow_doc(*, start_at=None, end_at=None) -> dict:
    """start → wait 1 day → email."""
    return document(
        [
            event_start("order_created"),
            node("wait", "wait", mode="fixed", duration="P1D"),
            steps("mail", send("welcome"), relevance="P2D"),
        ],
        chain("start", "wait", "mail"),
        schedule={
            "start_at": start_at.isoformat() if start_at else None,
            "end_at": end_at.isoformat() if end_at else None,
        },
    )


def daily_mail_to_all(*, schedule: dict) -> dict:
    """A schedule start at 10:00 every day for the segment "all" → email."""
    start = node("start", "schedule", recurrence={"every": "day", "at": "10:00"}, audience={"segment": "all"})
    return document([start, steps("mail", send("welcome"))], chain("start", "mail"), schedule=schedule)


def order(customer_id, now, *, occurred_at=None) -> None:
    kit.post_and_tick(now, customer_id, occurred_at=occurred_at)


# --- start_at ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_nothing_enters_before_start_at_and_events_from_then_do_not_enter_later(welcome):
    flow, ann = kit.launch_at(JUN_1, flow_doc(start_at=START_AT), "ann")
    order(ann, JUN_1)
    assert kit.runs_of(flow) == []
    # Processed (not kept for later): the flow was not running when it came.
    assert not Event.objects.filter(customer_id=ann, type="order_created", processed_at__isnull=True).exists()
    order(ann, START_AT - timedelta(seconds=1))
    # Occurred before the start, processed after it: still not entered.
    order(ann, START_AT + timedelta(minutes=1), occurred_at=START_AT - timedelta(minutes=1))
    assert kit.runs_of(flow) == []

    order(ann, START_AT)
    [run] = kit.runs_of(flow, ann)
    assert run.status == Run.Status.WAITING


@pytest.mark.django_db
def test_a_schedule_start_does_not_fire_before_start_at(welcome):
    doc = daily_mail_to_all(schedule={"start_at": "2026-06-03T12:00:00+00:00", "end_at": None})
    with at(JUN_1):
        ann = kit.customer("ann")
        kit.static_segment("all", [ann])
        flow = kit.launch(doc)
    with at(utc(2026, 6, 2, 10, 0)):
        assert tick(deliver=False)["schedules.skipped"] == 1
    # Jun 3 10:00 was missed; merged late (at 13:00) it is still a fire before the start.
    kit.tick_at(utc(2026, 6, 3, 13, 0))
    assert kit.runs_of(flow) == []
    kit.tick_at(utc(2026, 6, 4, 10, 0))
    assert [run.clock for run in kit.runs_of(flow)] == [utc(2026, 6, 4, 10, 0)]


@pytest.mark.django_db
def test_a_batch_run_outside_the_schedule_is_refused(welcome):
    with at(JUN_1):
        flow = kit.launch(flow_doc(start_at=START_AT))
        kit.static_segment("all", [kit.customer("ann")])
        with pytest.raises(ValueError, match="outside its schedule"):
            start_flow_for_segment(flow=flow, segment_slug="all")
    with at(START_AT):
        assert start_flow_for_segment(flow=flow, segment_slug="all") == 1


# --- end_at --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_after_end_at_runs_stay_where_they_are_and_nothing_new_enters(welcome):
    flow, ann, bob = kit.launch_at(JUN_1, flow_doc(end_at=END_AT), "ann", "bob")
    order(ann, JUN_1)
    [run] = kit.runs_of(flow, ann)
    assert (run.status, run.due_at) == (Run.Status.WAITING, JUN_1 + timedelta(days=1))

    order(bob, END_AT)  # at end_at sharp the flow is over
    kit.tick_at(JUN_1 + timedelta(days=1, hours=1))
    run.refresh_from_db()
    assert (run.status, run.node_key, run.due_at) == (Run.Status.WAITING, "wait", JUN_1 + timedelta(days=1))
    assert kit.path_of(run) == [("start", "next", "")]
    assert kit.runs_of(flow, bob) == []
    assert kit.messages_of(flow) == []


@pytest.mark.django_db
def test_moving_end_at_later_lets_the_runs_continue(welcome):
    flow, ann = kit.launch_at(JUN_1, flow_doc(end_at=END_AT), "ann")
    order(ann, JUN_1)
    with at(JUN_1 + timedelta(days=1, hours=1)):
        tick(deliver=False)
        assert kit.messages_of(flow) == []
        flow = kit.relaunch(flow, flow_doc(end_at=utc(2026, 6, 30)))
        tick(deliver=False)
    [run] = kit.runs_of(flow, ann)
    assert run.status == Run.Status.COMPLETED
    assert run.version_id == flow.live_version_id
    assert kit.path_of(run) == [("start", "next", ""), ("wait", "next", ""), ("mail", "next", "")]
    assert len(kit.messages_of(flow, ann)) == 1


@pytest.mark.django_db
def test_removing_end_at_lets_the_runs_continue_too(welcome):
    flow, ann = kit.launch_at(JUN_1, flow_doc(end_at=END_AT), "ann")
    order(ann, JUN_1)
    with at(JUN_1 + timedelta(days=1, hours=1)):
        flow = kit.relaunch(flow, flow_doc())
        tick(deliver=False)
    assert kit.runs_of(flow, ann)[0].status == Run.Status.COMPLETED


@pytest.mark.django_db
def test_a_schedule_start_does_not_fire_after_end_at(welcome):
    doc = daily_mail_to_all(schedule={"start_at": None, "end_at": "2026-06-02T12:00:00+00:00"})
    with at(JUN_1):
        kit.static_segment("all", [kit.customer("ann")])
        flow = kit.launch(doc)
    kit.tick_at(utc(2026, 6, 2, 10, 0))
    with at(utc(2026, 6, 3, 10, 0)):
        assert tick(deliver=False)["schedules.skipped"] == 1
    assert [run.clock for run in kit.runs_of(flow)] == [utc(2026, 6, 2, 10, 0)]
