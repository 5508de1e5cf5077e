"""Relevance periods (SPEC §5): a steps group must execute before the run's
clock (as it stood when the run reached the steps node) plus the relevance;
past that the run stops with relevance_expired, and that is no launch."""

from datetime import timedelta

import pytest

from flows.models import LaunchRecord, Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import chain, document, event_start, node, send, steps, utc

OCCURRED = utc(2026, 6, 6, 20, 0)
ARRIVES = utc(2026, 6, 10, 10, 0)


def straight(**limit) -> dict:
    return document(
        [event_start("order_created"), steps("thanks", send("welcome"), relevance="P1D")],
        chain("start", "thanks"),
        **limit,
    )


def after_a_wait(duration: str = "P3D", relevance: str = "P1D") -> dict:
    return kit.start_then(
        node("wait", "wait", mode="fixed", duration=duration),
        steps("thanks", send("welcome"), relevance=relevance),
    )


def arrive(customer_id: int, *, occurred_at=OCCURRED, now=ARRIVES) -> None:
    kit.post_and_tick(now, customer_id, occurred_at=occurred_at)


@pytest.mark.django_db
def test_a_late_event_is_dropped_at_the_steps_node(welcome):
    """Seed example: relevance 1 day, order dated Jun 6 20:00 arriving Jun 10 10:00."""
    flow, ann = kit.launch_at(
        OCCURRED, straight(launch_limit={"mode": "once", "period": None, "max_total": None}), "ann"
    )
    arrive(ann)
    [run] = kit.runs_of(flow, ann)
    assert (run.status, run.stop_reason, run.launched) == (Run.Status.STOPPED, "relevance_expired", False)
    assert kit.path_of(run) == [("start", "next", ""), ("thanks", "", "relevance_expired")]
    assert kit.messages_of(flow) == []
    # Not a launch: nothing recorded, a `once` flow lets the customer in later.
    assert not LaunchRecord.objects.filter(flow=flow, customer_id=ann).exists()
    stats = kit.stats_of(flow)
    assert stats[("thanks", "entered")] == 1
    assert stats[("thanks", "stop:relevance_expired")] == 1
    assert stats[("thanks", "exit:next")] == 0

    arrive(ann, occurred_at=ARRIVES, now=ARRIVES + timedelta(minutes=5))
    assert kit.runs_of(flow, ann)[1].status == Run.Status.COMPLETED
    assert len(kit.messages_of(flow, ann)) == 1


@pytest.mark.django_db
def test_a_wait_before_the_steps_moves_the_relevance_window(welcome):
    """With a 3-day wait the window is Jun 9 20:00 – Jun 10 20:00: executed at once."""
    flow, ann = kit.launch_at(OCCURRED, after_a_wait(), "ann")
    arrive(ann)
    [run] = kit.runs_of(flow, ann)
    assert run.status == Run.Status.COMPLETED
    assert kit.path_of(run) == [("start", "next", ""), ("wait", "next", ""), ("thanks", "next", "")]
    assert [m.template_slug for m in kit.messages_of(flow, ann)] == ["welcome"]
    # After the group executes, the run's clock is now.
    assert run.clock == ARRIVES
    assert run.launched


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arrives", "executed"),
    [
        (utc(2026, 6, 10, 19, 59, 59), True),  # last second of the window
        (utc(2026, 6, 10, 20, 0), False),  # "before clock + relevance": the end is out
    ],
)
def test_the_relevance_window_ends_exclusively(welcome, arrives, executed):
    flow, ann = kit.launch_at(OCCURRED, after_a_wait(), "ann")
    arrive(ann, now=arrives)
    [run] = kit.runs_of(flow, ann)
    assert run.stop_reason == ("" if executed else "relevance_expired")
    assert len(kit.messages_of(flow, ann)) == (1 if executed else 0)


@pytest.mark.django_db
def test_relevance_counts_from_the_clock_at_the_steps_node_not_from_entry(welcome):
    """A run that waited its full time on schedule is never stale, however
    long ago it entered."""
    flow, ann = kit.launch_at(OCCURRED, after_a_wait("P30D", relevance="PT1H"), "ann")
    kit.post_and_tick(OCCURRED, ann)
    kit.tick_at(OCCURRED + timedelta(days=30, minutes=59))
    [run] = kit.runs_of(flow, ann)
    assert run.status == Run.Status.COMPLETED
    assert len(kit.messages_of(flow, ann)) == 1


@pytest.mark.django_db
def test_a_run_woken_late_after_an_outage_is_dropped(welcome):
    """Nothing ticked for two days: the wait's end plus relevance is past."""
    flow, ann = kit.launch_at(OCCURRED, after_a_wait("P1D", relevance="PT12H"), "ann")
    kit.post_and_tick(OCCURRED, ann)
    kit.tick_at(OCCURRED + timedelta(days=3))
    [run] = kit.runs_of(flow, ann)
    assert run.stop_reason == "relevance_expired"
    assert kit.path_of(run)[-1] == ("thanks", "", "relevance_expired")
    assert kit.messages_of(flow) == []


# --- Events too old to start a run (max_age) ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("max_age", "age", "enters"),
    [
        (None, timedelta(days=7), True),  # the default, P7D: exactly 7 days old still enters
        (None, timedelta(days=7, seconds=1), False),
        ("PT1H", timedelta(minutes=59), True),
        ("PT1H", timedelta(hours=2), False),
    ],
)
def test_events_older_than_max_age_start_no_run(welcome, max_age, age, enters):
    config = {"max_age": max_age} if max_age else {}
    doc = document(
        [event_start("order_created", **config), steps("thanks", send("welcome"), relevance="P30D")],
        chain("start", "thanks"),
    )
    flow, ann = kit.launch_at(ARRIVES, doc, "ann")
    arrive(ann, occurred_at=ARRIVES - age, now=ARRIVES)
    assert len(kit.runs_of(flow, ann)) == (1 if enters else 0)
    assert kit.stats_of(flow)[("start", "entered")] == (1 if enters else 0)
