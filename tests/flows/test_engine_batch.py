"""What the nodes of one batch read: rows loaded once per batch, and read
afresh after a steps group that may have changed them."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from flows.engine.batch import EngineContext
from flows.engine.entry import start_flow_for_segment
from flows.engine.move import process_due_runs
from flows.models import Run
from tests.flows.engine_builders import chained, make_customers
from tests.flows.engine_kit import launch, node, static_segment, steps

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_a_dynamic_wait_after_a_set_field_step_reads_the_new_value():
    """wait until the date a steps group just stored, in the same batch: the
    customer row loaded for the batch is read again after the group."""
    target = "2026-06-05T10:00:00+00:00"
    with time_machine.travel(T0, tick=False):
        # A template value: the group reads the batch's customer rows.
        greeting = {"action": "set_field", "field": "greeting", "value": "Hi {{ customer.external_id }}"}
        store = steps("store", greeting, {"action": "set_field", "field": "due", "value": target})
        until = node("until", "wait", mode="dynamic", field="customer.fields.due", window=None)
        flow = launch(chained(store, until))
        static_segment("all", make_customers(3))
        start_flow_for_segment(flow=flow, segment_slug="all")
        process_due_runs(ctx=EngineContext())
    assert set(Run.objects.values_list("status", "node_key", "due_at")) == {
        (Run.Status.WAITING, "until", datetime(2026, 6, 5, 10, tzinfo=UTC))
    }


@pytest.mark.django_db
def test_a_run_due_again_at_once_is_left_for_the_next_tick(monkeypatch):
    """A node that asks to wait until a moment already past must not make the
    tick claim the run over and over."""
    from flows.nodes.wait import Wait as WaitKind

    with time_machine.travel(T0, tick=False):
        flow = launch(chained(node("pause", "wait", mode="fixed", duration="PT1H")))
        static_segment("all", make_customers(2))
        start_flow_for_segment(flow=flow, segment_slug="all")

        def wait_until_now(self, batch):
            for run in batch.runs:
                batch.wait(run, batch.now)

        monkeypatch.setattr(WaitKind, "process", wait_until_now)
        counts = process_due_runs(ctx=EngineContext())
    assert counts["runs"] == 2 and counts["batches"] == 1
    assert set(Run.objects.values_list("status", "due_at")) == {(Run.Status.WAITING, T0)}
    # The next pass (another tick) takes them again.
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        assert process_due_runs(ctx=EngineContext())["runs"] == 2
