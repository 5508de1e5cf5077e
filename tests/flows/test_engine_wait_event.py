"""The wait_event node (SPEC §13) in running flows: `done` when the customer's
matching event comes (clock = its time), `timeout` at clock + timeout,
released in bulk when events are matched, test mode skipping the timeout,
and the version switch by node key."""

from datetime import timedelta

import pytest

from flows.engine.tick import tick
from flows.models import Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, document, edge, event_start, node, send, steps, utc

NOW = utc(2026, 6, 1, 9, 0)
CLICKED = {"field": "event.url", "op": "contains", "value": "/offer"}


@pytest.fixture
def mails(db):
    kit.email_templates("offer", "thanks", "nudge")


def _doc(timeout: str = "P3D", filter_rule: dict | None = None) -> dict:
    return document(
        [
            event_start("signed_up"),
            steps("offer", send("offer")),
            node("click", "wait_event", event_type="email_clicked", filter=filter_rule, timeout=timeout),
            steps("thanks", send("thanks")),
            steps("nudge", send("nudge")),
        ],
        [
            edge("start", "offer"),
            edge("offer", "click"),
            edge("click", "thanks", "done"),
            edge("click", "nudge", "timeout"),
        ],
    )


def _enter(customer_id: int) -> None:
    kit.post_and_tick(NOW, customer_id, event_type="signed_up")


def _sent(flow, customer_id) -> list[str]:
    return [message.template_slug for message in kit.messages_of(flow, customer_id)]


@pytest.mark.django_db(transaction=True)
def test_a_matching_event_releases_the_waiting_runs_at_once_and_the_others_time_out(mails):
    with at(NOW):
        flow = kit.launch(_doc(filter_rule=CLICKED))
        ann, bob, cid = kit.customer("ann"), kit.customer("bob"), kit.customer("cid")
    for person in (ann, bob, cid):
        _enter(person)
    assert {run.status for run in kit.runs_of(flow)} == {Run.Status.WAITING}
    clicked = NOW + timedelta(hours=5)
    with at(clicked):
        kit.post_event(ann, "email_clicked", occurred_at=clicked, payload={"url": "https://x.test/offer"})
        kit.post_event(
            bob, "email_clicked", occurred_at=clicked, payload={"url": "https://x.test/unsubscribe"}
        )
        counts = tick(deliver=False)
    assert counts["events.runs_woken"] == 2
    (ann_run,) = kit.runs_of(flow, ann)
    assert ann_run.status == Run.Status.COMPLETED and ann_run.clock == clicked
    assert ("click", "done", "") in kit.path_of(ann_run)
    assert _sent(flow, ann) == ["offer", "thanks"]
    # Bob's click did not match the filter: he waits on until the timeout.
    assert kit.runs_of(flow, bob)[0].status == Run.Status.WAITING
    kit.tick_at(NOW + timedelta(days=3, minutes=1))
    for person in (bob, cid):
        (run,) = kit.runs_of(flow, person)
        assert ("click", "timeout", "") in kit.path_of(run)
        assert _sent(flow, person) == ["offer", "nudge"]
    stats = kit.stats_of(flow)
    assert (stats[("click", "exit:done")], stats[("click", "exit:timeout")]) == (1, 2)


@pytest.mark.django_db
def test_an_event_from_before_the_run_reached_the_node_does_not_count(mails):
    with at(NOW):
        flow = kit.launch(_doc())
        ann = kit.customer("ann")
        kit.post_event(ann, "email_clicked", occurred_at=NOW - timedelta(hours=1))
        tick(deliver=False)
    _enter(ann)
    assert kit.runs_of(flow, ann)[0].status == Run.Status.WAITING


def late_run_doc() -> dict:
    """Events up to 30 days old start runs, which wait 3 days for a click."""
    return document(
        [
            event_start("signed_up", max_age="P30D"),
            node("click", "wait_event", event_type="email_clicked", timeout="P3D"),
        ],
        [edge("start", "click")],
    )


@pytest.mark.django_db
def test_a_late_run_finds_the_event_already_stored_and_leaves_by_done(mails):
    """Flow time: a run whose clock is days behind (its event was ingested
    late) is decided by the events of its own timeline at once."""
    flow, ann = kit.launch_at(NOW, late_run_doc(), "ann")
    with at(NOW):
        kit.post_event(ann, "email_clicked", occurred_at=NOW - timedelta(days=9))
        kit.post_event(ann, "signed_up", occurred_at=NOW - timedelta(days=10))
        tick(deliver=False)
    (run,) = kit.runs_of(flow, ann)
    assert run.status == Run.Status.COMPLETED  # the unwired port ends the run
    assert run.clock == NOW - timedelta(days=9)
    assert kit.path_of(run)[-1] == ("click", "done", "")


@pytest.mark.django_db
def test_the_timeout_moves_the_clock_to_clock_plus_timeout(mails):
    flow, ann = kit.launch_at(NOW, late_run_doc(), "ann")
    with at(NOW):
        kit.post_event(ann, "signed_up", occurred_at=NOW - timedelta(days=10))
        tick(deliver=False)
    (run,) = kit.runs_of(flow, ann)
    assert (run.status, run.clock) == (Run.Status.COMPLETED, NOW - timedelta(days=7))
    assert kit.path_of(run)[-1] == ("click", "timeout", "")


@pytest.mark.django_db
def test_test_mode_skips_the_timeout(mails):
    with at(NOW):
        flow = kit.start_test(_doc())
        ann = kit.customer("ann")
        kit.post_event(ann, "signed_up", occurred_at=NOW)
        tick(deliver=False)
    (run,) = kit.runs_of(flow, ann)
    assert run.is_test and run.status == Run.Status.COMPLETED
    assert ("click", "timeout", "") in kit.path_of(run)


@pytest.mark.django_db
def test_a_new_version_keeps_the_waiting_runs_by_node_key(mails):
    flow, ann = kit.launch_at(NOW, _doc(timeout="P3D"), "ann")
    _enter(ann)
    with at(NOW + timedelta(hours=1)):
        flow = kit.relaunch(flow, _doc(timeout="P1D"))
    clicked = NOW + timedelta(hours=2)
    with at(clicked):
        # Waiting at the old version's node: the click still wakes it, and it
        # continues in the live version at the node of the same key.
        kit.post_event(ann, "email_clicked", occurred_at=clicked)
        tick(deliver=False)
    (run,) = kit.runs_of(flow, ann)
    assert run.version_id == flow.live_version_id
    assert ("click", "done", "") in kit.path_of(run)
    assert _sent(flow, ann) == ["offer", "thanks"]


@pytest.mark.django_db
def test_the_config_is_validated(mails):
    from flows import lifecycle

    doc = _doc()
    doc["nodes"][2]["config"] = {
        "event_type": "",
        "filter": {"field": "points", "op": "gt", "value": 1},
        "x": 1,
    }
    flow = lifecycle.create_flow(document=doc)
    problems = {(error["node"], error["field"]) for error in flow.versions.get().errors}
    assert {
        ("click", "event_type"),
        ("click", "filter.field"),
        ("click", "timeout"),
        ("click", "x"),
    } <= problems
