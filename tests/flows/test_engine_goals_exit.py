"""Exit criteria (SPEC §13) in running flows: a run whose customer gets a
matching event after entering stops with `exit_criteria` before any further
node — checked when the event is matched (ingestion) and on every wake —
and its own trigger event never makes it exit."""

from datetime import timedelta

import pytest

from flows.engine.tick import tick
from flows.models import Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, chain, document, event_start, node, send, steps, utc

NOW = utc(2026, 6, 1, 9, 0)
BIG_ORDER = {"field": "event.total", "op": "gte", "value": 100}
ANY_ORDER = {"event_type": "order_created", "filter": None}  # exit criteria


@pytest.fixture
def mails(db):
    kit.email_templates("welcome", "reminder")


def _doc(exit_criteria: dict | None, *, start: str = "signed_up") -> dict:
    doc = document(
        [
            event_start(start),
            steps("hello", send("welcome")),
            node("day", "wait", mode="fixed", duration="P1D"),
            steps("remind", send("reminder")),
        ],
        chain("start", "hello", "day", "remind"),
    )
    doc["exit"] = exit_criteria
    return doc


def _enter(customer_id: int, event_type: str = "signed_up") -> None:
    kit.post_and_tick(NOW, customer_id, event_type=event_type)


@pytest.mark.django_db(transaction=True)
def test_a_matching_event_stops_the_waiting_run_when_it_is_ingested(mails):
    flow, ann, bob = kit.launch_at(NOW, _doc(ANY_ORDER), "ann", "bob")
    _enter(ann)
    _enter(bob)
    later = NOW + timedelta(hours=3)
    with at(later):
        kit.post_event(ann, "order_created", occurred_at=later)
        counts = tick(deliver=False)
    assert counts["events.runs_exited"] == 1
    (run,) = kit.runs_of(flow, ann)
    assert (run.status, run.stop_reason, run.ended_at) == (Run.Status.STOPPED, "exit_criteria", later)
    assert kit.path_of(run)[-1] == ("day", "", "exit_criteria")
    # Bob did not order: he goes on and gets the reminder a day later.
    kit.tick_at(NOW + timedelta(days=1, minutes=1))
    assert [m.template_slug for m in kit.messages_of(flow, bob)] == ["welcome", "reminder"]
    assert [m.template_slug for m in kit.messages_of(flow, ann)] == ["welcome"]
    assert kit.stats_of(flow)[("day", "stop:exit_criteria")] == 1


@pytest.mark.django_db
def test_the_filter_reads_the_exit_events_payload(mails):
    flow, ann = kit.launch_at(NOW, _doc({"event_type": "order_created", "filter": BIG_ORDER}), "ann")
    _enter(ann)
    kit.post_and_tick(NOW + timedelta(hours=1), ann, payload={"total": 20})
    assert kit.runs_of(flow, ann)[0].status == Run.Status.WAITING
    kit.post_and_tick(NOW + timedelta(hours=2), ann, payload={"total": 150})
    assert kit.runs_of(flow, ann)[0].stop_reason == "exit_criteria"


@pytest.mark.django_db
def test_an_event_from_before_the_run_entered_does_not_count(mails):
    flow, ann = kit.launch_at(NOW, _doc(ANY_ORDER), "ann")
    _enter(ann)
    with at(NOW + timedelta(hours=1)):
        # Ingested late: the order happened before the run entered.
        kit.post_event(ann, "order_created", occurred_at=NOW - timedelta(hours=1))
        tick(deliver=False)
    assert kit.runs_of(flow, ann)[0].status == Run.Status.WAITING


@pytest.mark.django_db
def test_the_trigger_event_itself_never_makes_its_run_exit(mails):
    with at(NOW):
        # Starts and exits on the same type: each order restarts the journey.
        flow = kit.launch(_doc(ANY_ORDER, start="order_created"))
        ann = kit.customer("ann")
    _enter(ann, "order_created")
    (run,) = kit.runs_of(flow, ann)
    assert run.status == Run.Status.WAITING
    with at(NOW + timedelta(hours=1)):
        kit.post_event(ann, "order_created", occurred_at=NOW + timedelta(hours=1))
        tick(deliver=False)
    first, second = kit.runs_of(flow, ann)
    assert first.stop_reason == "exit_criteria"
    assert second.status == Run.Status.WAITING


@pytest.mark.django_db
def test_the_wake_stops_a_run_whose_exit_event_was_already_matched(mails):
    """An event matched while the run was held elsewhere (or before its flow
    had an exit): the wake finds it before the run moves on."""
    flow, ann = kit.launch_at(NOW, _doc(ANY_ORDER), "ann")
    _enter(ann)
    with at(NOW + timedelta(hours=1)):
        kit.post_event(ann, "order_created", occurred_at=NOW + timedelta(hours=1))
    # Mark the event as matched without the ingestion check (as if a worker held the run).
    from customers.models import Event

    Event.objects.filter(type="order_created").update(processed_at=NOW + timedelta(hours=1))
    kit.tick_at(NOW + timedelta(days=1, minutes=1))
    (run,) = kit.runs_of(flow, ann)
    assert run.stop_reason == "exit_criteria"
    assert kit.path_of(run)[-1] == ("day", "", "exit_criteria")
    assert [m.template_slug for m in kit.messages_of(flow, ann)] == ["welcome"]


@pytest.mark.django_db
def test_a_flow_without_exit_criteria_ignores_the_event(mails):
    flow, ann = kit.launch_at(NOW, _doc(None), "ann")
    _enter(ann)
    with at(NOW + timedelta(hours=1)):
        kit.post_event(ann, "order_created", occurred_at=NOW + timedelta(hours=1))
        tick(deliver=False)
    kit.tick_at(NOW + timedelta(days=1, minutes=1))
    assert [m.template_slug for m in kit.messages_of(flow, ann)] == ["welcome", "reminder"]


@pytest.mark.django_db
def test_exit_and_goal_are_validated_with_the_document(mails):
    from flows import lifecycle

    doc = document([event_start("signed_up")], [])
    doc["exit"] = {"event_type": " ", "filter": {"field": "customer.email", "op": "exists"}}
    doc["goal"] = {
        "event_type": "order_created",
        "filter": None,
        "window": "P0D",
        "value_field": "customer.email",
    }
    flow = lifecycle.create_flow(document=doc)
    fields = {error["field"] for error in flow.versions.get().errors}
    assert {"exit.event_type", "exit.filter.field", "goal.window", "goal.value_field"} <= fields
