"""Runs that events start move on in the transaction that matched the events
(flows.engine.move.move_entered, passed by the tick to match_events): no
claim, no second batch. What they do is what process_due_runs would have
done; when that batch raises, it leaves nothing and the runs wait, due, for
process_due_runs, which isolates the run at fault as always."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import OperationalError

import flows.engine.move
from channels.models import Message
from customers.models import Event
from flows.models import Flow, NodePass
from flows.nodes.event import match_events
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import chain, document, event_start, send, steps

NOON = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _templates(db):
    kit.email_templates("hello")


def hello_flow() -> Flow:
    return kit.launch(
        document([event_start("order_created"), steps("greet", send("hello"))], chain("start", "greet"))
    )


def test_a_run_started_by_an_event_moves_on_in_the_same_transaction():
    flow = hello_flow()
    ada = kit.customer("ada")
    kit.post_event(ada, occurred_at=NOON)

    counts = kit.tick_at(NOON)

    [run] = kit.runs_of(flow)
    assert (run.status, run.seq, run.due_at) == ("completed", 1, None)
    assert kit.path_of(run) == [("start", "next", ""), ("greet", "next", "")]
    assert Message.objects.filter(customer_id=ada, run_id=run.pk, status="queued").count() == 1
    assert counts["events.runs_started"] == 1
    assert counts["runs.runs"] == 1 and counts["runs.completed"] == 1
    assert "runs.batches" not in counts  # nothing was left for process_due_runs
    # Counted once each, the entry with the move.
    assert kit.stats_of(flow) == {
        ("start", "entered"): 1,
        ("start", "exit:next"): 1,
        ("greet", "entered"): 1,
        ("greet", "exit:next"): 1,
    }


def test_without_a_move_the_runs_wait_due_for_process_due_runs():
    flow = hello_flow()
    kit.post_event(kit.customer("ada"), occurred_at=NOON)

    with kit.at(NOON):
        counts = match_events()

    [run] = kit.runs_of(flow)
    assert (run.status, run.node_key, run.due_at) == ("active", "start", NOON)
    assert not any(key.startswith("moved.") for key in counts)
    assert kit.stats_of(flow) == {("start", "entered"): 1}


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug one customer's data triggers"),
        # A deadlock aborts the savepoint alone; it is not the system failing.
        OperationalError("deadlock detected"),
    ],
    ids=["error", "deadlock"],
)
def test_a_move_that_raises_leaves_the_runs_to_process_due_runs(monkeypatch, error):
    if isinstance(error, OperationalError):
        cause = type("DeadlockDetected", (Exception,), {"sqlstate": "40P01"})()
        error.__cause__ = cause
    original = flows.engine.move.move_batch
    calls = []

    def fails_once(runs, **kwargs):
        calls.append(len(runs))
        if len(calls) == 1:
            # Something written before the raise is rolled back with it.
            Message.objects.filter(pk__gt=0).delete()
            raise error
        return original(runs, **kwargs)

    monkeypatch.setattr(flows.engine.move, "move_batch", fails_once)
    flow = hello_flow()
    ada = kit.customer("ada")
    kit.post_event(ada, occurred_at=NOON)

    counts = kit.tick_at(NOON)

    assert calls == [1, 1]  # the entry's move, then process_due_runs' batch
    [run] = kit.runs_of(flow)
    assert (run.status, run.stop_reason) == ("completed", "")
    assert counts["runs.batches"] == 1 and counts["runs.completed"] == 1
    assert "runs.errors" not in counts
    assert Message.objects.filter(customer_id=ada, run_id=run.pk).count() == 1
    assert NodePass.objects.filter(run=run).count() == 2
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    assert kit.stats_of(flow)[("start", "entered")] == 1


def test_runs_of_a_flow_the_pass_does_not_move_are_left_due(monkeypatch):
    """run_flow's pass moves one flow's runs only; the runs an event starts in
    another flow meanwhile are moved by a pass that moves every flow."""
    flow = hello_flow()
    other = kit.launch(
        document([event_start("order_created"), steps("thanks", send("hello"))], chain("start", "thanks"))
    )
    kit.post_event(kit.customer("ada"), occurred_at=NOON)

    with kit.at(NOON):
        ctx = flows.engine.move.EngineContext(flow_ids=[other.pk])
        counts = match_events(ctx=ctx, move=flows.engine.move.move_entered)

    [run] = kit.runs_of(flow)
    assert (run.status, run.node_key) == ("active", "start")
    [moved] = kit.runs_of(other)
    assert moved.status == "completed"
    assert counts["moved.runs"] == 1
