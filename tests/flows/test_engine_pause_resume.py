"""Pause and resume (SPEC §8): a paused flow starts no runs — events that
arrive meanwhile are not kept to start runs later — its waiting runs stay
where they are, and on resume they go on, with relevance still applying."""

from datetime import timedelta

import pytest

from customers.models import Event
from flows import lifecycle
from flows.engine.tick import tick
from flows.models import Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, chain, document, event_start, node, send, steps, utc

JUN_1 = utc(2026, 6, 1, 9, 0)


def waiting_flow() -> dict:
    return document(
        [
            event_start("order_created"),
            node("wait", "wait", mode="fixed", duration="P1D"),
            steps("mail", send("welcome"), relevance="P1D"),
        ],
        chain("start", "wait", "mail"),
    )


def order(customer_id, now) -> None:
    kit.post_and_tick(now, customer_id)


def paused_while_waiting() -> tuple:
    """Ann's run waits (entered at JUN_1) in a flow paused an hour later: (flow, ann)."""
    flow, ann = kit.launch_at(JUN_1, waiting_flow(), "ann")
    order(ann, JUN_1)
    with at(JUN_1 + timedelta(hours=1)):
        return lifecycle.pause_flow(flow=flow), ann


@pytest.mark.django_db
def test_events_while_paused_start_no_runs_then_or_after_resume(welcome):
    with at(JUN_1):
        flow = kit.launch(waiting_flow())
        ann = kit.customer("ann")
        flow = lifecycle.pause_flow(flow=flow)
    order(ann, JUN_1 + timedelta(hours=1))
    assert kit.runs_of(flow) == []
    # Matched and done with: nothing left for a later tick to start a run from.
    assert Event.objects.filter(customer_id=ann, processed_at__isnull=True).count() == 0
    with at(JUN_1 + timedelta(hours=2)):
        lifecycle.resume_flow(flow=flow)
        tick(deliver=False)
    assert kit.runs_of(flow) == []
    assert kit.stats_of(flow)[("start", "entered")] == 0

    order(ann, JUN_1 + timedelta(hours=3))  # after resume: enters as usual
    assert [run.status for run in kit.runs_of(flow, ann)] == [Run.Status.WAITING]


@pytest.mark.django_db
def test_waiting_runs_stay_while_paused_and_continue_on_resume(welcome):
    flow, ann = paused_while_waiting()
    kit.tick_at(JUN_1 + timedelta(days=1, hours=1))  # past the wake-up time
    [run] = kit.runs_of(flow, ann)
    assert (run.status, run.node_key) == (Run.Status.WAITING, "wait")
    assert kit.messages_of(flow) == []

    with at(JUN_1 + timedelta(days=1, hours=2)):
        lifecycle.resume_flow(flow=flow)
        tick(deliver=False)
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert kit.path_of(run) == [("start", "next", ""), ("wait", "next", ""), ("mail", "next", "")]
    assert len(kit.messages_of(flow, ann)) == 1


@pytest.mark.django_db
def test_relevance_still_applies_after_a_long_pause(welcome):
    flow, ann = paused_while_waiting()
    # Due Jun 2 09:00, relevant until Jun 3 09:00; resumed Jun 4.
    with at(utc(2026, 6, 4, 9, 0)):
        lifecycle.resume_flow(flow=flow)
        tick(deliver=False)
    [run] = kit.runs_of(flow, ann)
    kit.assert_stopped_without_messages(flow, run, "mail", "relevance_expired")


@pytest.mark.django_db
def test_archiving_stops_the_waiting_runs(welcome):
    flow, ann = kit.launch_at(JUN_1, waiting_flow(), "ann")
    order(ann, JUN_1)
    with at(JUN_1 + timedelta(hours=1)):
        lifecycle.archive_flow(flow=flow)
    with at(JUN_1 + timedelta(days=2)):
        kit.post_event(ann, occurred_at=JUN_1 + timedelta(days=2))
        tick(deliver=False)
    [run] = kit.runs_of(flow, ann)
    assert (run.status, run.stop_reason) == (Run.Status.STOPPED, "flow_stopped")
    assert kit.messages_of(flow) == []
