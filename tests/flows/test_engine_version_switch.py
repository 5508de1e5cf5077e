"""Runs in flight when a new version is launched (SPEC §4): a run waiting in
a wait node keeps its wake-up time, then continues in the new version along
the new version's edge from that key; if the key is gone, or its kind
changed, the run stops with node_deleted."""

from datetime import timedelta

import pytest

from flows.engine.tick import tick
from flows.models import Flow, FlowVersion, NodePass, Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, chain, document, event_start, node, send, steps, utc

JUN_1 = utc(2026, 6, 1, 9, 0)
WAKE_UP = JUN_1 + timedelta(days=1)


@pytest.fixture
def templates(db):
    kit.email_templates("v1-mail", "v2-mail")


def version_doc(*, wait_key: str = "wait", wait_duration: str = "P1D", mail: str = "v1-mail") -> dict:
    return document(
        [
            event_start("order_created"),
            node(wait_key, "wait", mode="fixed", duration=wait_duration),
            steps(f"send-{mail}", send(mail)),
        ],
        chain("start", wait_key, f"send-{mail}"),
    )


@pytest.fixture
def waiting_run(templates):
    """A flow on version 1 with ann waiting in "wait" until Jun 2 09:00."""
    with at(JUN_1):
        flow = kit.launch(version_doc())
        ann = kit.customer("ann")
        kit.post_event(ann, occurred_at=JUN_1)
        tick(deliver=False)
    [run] = kit.runs_of(flow, ann)
    assert (run.status, run.node_key, run.due_at) == (Run.Status.WAITING, "wait", WAKE_UP)
    return flow, run


@pytest.mark.django_db
def test_a_waiting_run_keeps_its_wake_up_time_and_follows_the_new_edge(waiting_run):
    flow, run = waiting_run
    v1 = run.version_id
    with at(JUN_1 + timedelta(hours=2)):
        flow = kit.relaunch(flow, version_doc(wait_duration="P3D", mail="v2-mail"))
        tick(deliver=False)
    run.refresh_from_db()
    assert (run.status, run.due_at) == (Run.Status.WAITING, WAKE_UP)  # the old setting, not 3 days

    kit.tick_at(WAKE_UP - timedelta(seconds=1))
    assert kit.messages_of(flow) == []
    kit.tick_at(WAKE_UP)
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert run.version_id == flow.live_version_id != v1
    assert [m.template_slug for m in kit.messages_of(flow)] == ["v2-mail"]
    assert kit.path_of(run) == [("start", "next", ""), ("wait", "next", ""), ("send-v2-mail", "next", "")]
    # Each pass is recorded under the version it happened in.
    versions = dict(NodePass.objects.filter(run=run).values_list("node_key", "version_id"))
    assert versions == {"start": v1, "wait": flow.live_version_id, "send-v2-mail": flow.live_version_id}


@pytest.mark.django_db
def test_a_run_at_a_key_deleted_in_the_new_version_stops_at_its_wake_up_time(waiting_run):
    flow, run = waiting_run
    with at(JUN_1 + timedelta(hours=2)):
        flow = kit.relaunch(flow, version_doc(wait_key="pause"))
        tick(deliver=False)
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    kit.tick_at(WAKE_UP)
    run.refresh_from_db()
    kit.assert_stopped_without_messages(flow, run, "wait", "node_deleted")


@pytest.mark.django_db
def test_a_run_at_a_key_whose_kind_changed_stops(waiting_run):
    flow, run = waiting_run
    doc = document(
        [
            event_start("order_created"),
            node("wait", "condition", rule={"field": "customer.email", "op": "exists"}),
            steps("mail", send("v2-mail")),
        ],
        [{"from": "start", "to": "wait"}, {"from": "wait", "to": "mail", "port": "yes"}],
    )
    with at(JUN_1 + timedelta(hours=2)):
        flow = kit.relaunch(flow, doc)
    kit.tick_at(WAKE_UP)
    run.refresh_from_db()
    assert (run.status, run.stop_reason) == (Run.Status.STOPPED, "node_deleted")
    assert kit.messages_of(flow) == []


@pytest.mark.django_db
def test_new_runs_enter_the_new_version_and_finished_runs_stay_as_they_were(waiting_run, templates):
    flow, waiting = waiting_run
    with at(JUN_1):
        bob = kit.customer("bob")
    v1 = FlowVersion.objects.get(flow=flow, number=1)
    with at(JUN_1 + timedelta(hours=2)):
        flow = kit.relaunch(flow, version_doc(wait_duration="PT1H", mail="v2-mail"))
        kit.post_event(bob, occurred_at=JUN_1 + timedelta(hours=2))
        tick(deliver=False)
    [bob_run] = kit.runs_of(flow, bob)
    assert bob_run.version_id == flow.live_version_id
    assert bob_run.due_at == JUN_1 + timedelta(hours=3)  # the new version's wait
    v1.refresh_from_db()
    assert v1.stopped_at == JUN_1 + timedelta(hours=2)


@pytest.mark.django_db
def test_the_node_deleted_pass_is_recorded_under_the_version_that_had_the_node(waiting_run):
    flow, run = waiting_run
    v1 = run.version_id
    with at(JUN_1 + timedelta(hours=2)):
        flow = kit.relaunch(flow, version_doc(wait_key="pause"))
    kit.tick_at(WAKE_UP)
    stopped = NodePass.objects.get(run=run, stop_reason="node_deleted")
    assert (stopped.node_key, stopped.kind, stopped.version_id) == ("wait", "wait", v1)


@pytest.mark.django_db
def test_events_matched_while_a_new_version_is_launching_enter_the_live_one(waiting_run):
    """Between the launch request and its completion the live version still
    runs: an event matched then starts a run, which then moves on in the new version."""
    from flows import lifecycle
    from flows.engine.batch import EngineContext
    from flows.nodes.event import match_events

    flow, run = waiting_run
    with at(JUN_1 + timedelta(hours=2)):
        bob = kit.customer("bob")
        lifecycle.edit_flow(flow=flow)
        lifecycle.save_draft(flow=flow, document=version_doc(mail="v2-mail"))
        flow = lifecycle.launch_flow(flow=flow, enqueue=False)
        assert flow.status == "launching"
        kit.post_event(bob, occurred_at=JUN_1 + timedelta(hours=2))
        assert match_events(ctx=EngineContext())["runs_started"] == 1
        [bob_run] = kit.runs_of(flow, bob)
        assert bob_run.version_id == run.version_id  # the version live at the time
        tick(deliver=False)  # finishes the launch
    flow = Flow.objects.get(pk=flow.pk)
    bob_run.refresh_from_db()
    assert bob_run.version_id == flow.live_version_id != run.version_id
    kit.tick_at(JUN_1 + timedelta(days=1, hours=2))
    assert [m.template_slug for m in kit.messages_of(flow, bob)] == ["v2-mail"]
