"""Test mode (SPEC §9): real events and audiences, conditions and splits
apply; waits are skipped; messages are rendered but not sent (test_mode);
A/B acts as a plain splitter; launch limits and start/end dates are ignored;
test runs never count as launches; stats are kept apart; a scheduled test
runs once, on at most 10,000 customers."""

from datetime import timedelta

import pytest

from channels.models import Message
from customers.models import PointsEntry
from flows.engine.batch import EngineContext
from flows.models import ABAssignment, FlowVersion, LaunchRecord, NodeStat, Run
from flows.nodes.schedule import firing
from flows.nodes.schedule.firing import fire_schedules
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, chain, document, edge, event_start, node, send, steps, utc

JUN_1 = utc(2026, 6, 1, 9, 0)
ONCE = {"mode": "once", "period": None, "max_total": None}


def order(customer_id, now, **payload) -> None:
    kit.post_and_tick(now, customer_id, payload=payload)


def waiting_flow(**settings) -> dict:
    return document(
        [
            event_start("order_created"),
            node("wait", "wait", mode="fixed", duration="P3D"),
            node("birthday", "wait", mode="dynamic", field="customer.fields.birthday", offset="-P3D"),
            steps("mail", send("welcome"), {"action": "points", "amount": 50}),
        ],
        chain("start", "wait", "birthday", "mail"),
        **settings,
    )


@pytest.mark.django_db
def test_a_test_run_skips_waits_and_renders_its_message_without_sending_it(welcome):
    with at(JUN_1):
        flow = kit.start_test(waiting_flow())
        ann = kit.customer("ann", first_name="Ann", fields={"birthday": "2030-01-01"})
    order(ann, JUN_1)
    [run] = kit.runs_of(flow, ann)
    assert run.is_test
    assert run.status == Run.Status.COMPLETED  # no 3 days, no waiting for 2030
    assert kit.path_of(run) == [
        ("start", "next", ""),
        ("wait", "next", ""),
        ("birthday", "next", ""),
        ("mail", "next", ""),
    ]
    [message] = kit.messages_of(flow, ann)
    assert (message.status, message.reason, message.is_test) == (Message.Status.NOT_SENT, "test_mode", True)
    assert message.rendered["text"] == "welcome for Ann"
    # Nothing real changes for the customer.
    assert not PointsEntry.objects.filter(customer_id=ann).exists()
    # Never a launch.
    assert not run.launched
    assert not LaunchRecord.objects.filter(flow=flow).exists()


@pytest.mark.django_db
def test_test_stats_are_kept_apart(welcome):
    with at(JUN_1):
        flow = kit.start_test(waiting_flow())
        ann = kit.customer("ann", fields={"birthday": "2030-01-01"})
    order(ann, JUN_1)
    assert not NodeStat.objects.filter(flow=flow, is_test=False).exists()
    stats = kit.stats_of(flow, is_test=True)
    assert stats[("start", "entered")] == 1
    assert stats[("mail", "entered")] == 1
    assert stats[("mail", "exit:next")] == 1


@pytest.mark.django_db
def test_launch_limits_and_start_end_dates_are_ignored(welcome):
    doc = waiting_flow(
        launch_limit=ONCE,
        schedule={"start_at": "2030-01-01T00:00:00+00:00", "end_at": "2030-02-01T00:00:00+00:00"},
    )
    with at(JUN_1):
        flow = kit.start_test(doc)
        ann = kit.customer("ann", fields={"birthday": "2030-01-01"})
    order(ann, JUN_1)
    order(ann, JUN_1 + timedelta(minutes=1))
    assert [(run.status, run.stop_reason) for run in kit.runs_of(flow, ann)] == [
        (Run.Status.COMPLETED, "")
    ] * 2
    assert len(kit.messages_of(flow, ann)) == 2
    assert not LaunchRecord.objects.filter(flow=flow).exists()


@pytest.mark.django_db
def test_conditions_and_start_filters_apply_in_test_mode(welcome):
    doc = document(
        [
            event_start("order_created", filter={"field": "event.total", "op": "gte", "value": 10}),
            node("big", "condition", rule={"field": "event.total", "op": "gte", "value": 100}),
            steps("mail", send("welcome")),
        ],
        [edge("start", "big"), edge("big", "mail", "yes")],
    )
    with at(JUN_1):
        flow = kit.start_test(doc)
        ann = kit.customer("ann")
    order(ann, JUN_1, total=5)
    order(ann, JUN_1, total=50)
    order(ann, JUN_1, total=500)
    runs = kit.runs_of(flow, ann)
    assert [run.stop_reason for run in runs] == ["filter_failed", "", ""]
    assert kit.stats_of(flow, is_test=True)[("start", "stop:filter_failed")] == 1
    assert [kit.path_of(run)[-1] for run in runs] == [
        ("start", "", "filter_failed"),
        ("big", "no", ""),
        ("mail", "next", ""),
    ]


@pytest.mark.django_db
def test_ab_acts_as_a_plain_splitter_without_sticky_assignments(welcome):
    variants = [{"name": "A", "percent": 50}, {"name": "B", "percent": 50}]
    with at(JUN_1):
        flow = kit.start_test(kit.start_then(node("ab", "ab_test", variants=variants)))
        ann = kit.customer("ann")
    kit.post_and_tick(JUN_1, ann, times=40)
    ports = [kit.path_of(run)[-1][1] for run in kit.runs_of(flow, ann)]
    assert len(ports) == 40
    # One customer, drawn afresh on every run: both variants show up (a sticky
    # assignment would give the same one 40 times).
    assert set(ports) == {"A", "B"}
    assert not ABAssignment.objects.filter(flow=flow).exists()


@pytest.mark.django_db
def test_a_scheduled_test_runs_once_on_at_most_10000_customers(welcome):
    assert firing.TEST_AUDIENCE_LIMIT == 10_000
    kit.bulk_customers(10_001, segment="everyone")
    doc = document(
        [
            node(
                "start",
                "schedule",
                recurrence={"every": "day", "at": "10:00"},
                audience={"segment": "everyone"},
            ),
            steps("mail", send("welcome")),
        ],
        chain("start", "mail"),
    )
    with at(JUN_1):
        flow = kit.start_test(doc)
    version = FlowVersion.objects.get(pk=flow.live_version_id)
    assert version.is_test
    assert version.next_fire_at == utc(2026, 6, 1, 10, 0)
    with at(utc(2026, 6, 1, 10, 0)):
        assert fire_schedules(ctx=EngineContext()) == {"fired": 1, "runs_started": 10_000}
    version.refresh_from_db()
    assert version.next_fire_at is None
    with at(utc(2026, 6, 2, 10, 0)):
        assert fire_schedules(ctx=EngineContext()) == {}
    assert Run.objects.filter(flow=flow, is_test=True).count() == 10_000
    assert not Run.objects.filter(flow=flow, is_test=False).exists()


@pytest.mark.django_db
def test_customers_tested_on_a_once_flow_still_launch_it_when_it_goes_live(welcome):
    from flows import lifecycle

    doc = document(
        [event_start("order_created"), steps("mail", send("welcome"))],
        chain("start", "mail"),
        launch_limit=ONCE,
    )
    with at(JUN_1):
        flow = kit.start_test(doc)
        ann = kit.customer("ann")
    order(ann, JUN_1)
    with at(JUN_1 + timedelta(hours=1)):
        flow = lifecycle.stop_test(flow=flow)
        lifecycle.launch_flow(flow=flow, enqueue=False)
        flow = lifecycle.finish_launch(flow_id=flow.pk)
    order(ann, JUN_1 + timedelta(hours=2))
    order(ann, JUN_1 + timedelta(hours=3))
    live = [run for run in kit.runs_of(flow, ann) if not run.is_test]
    assert [(run.status, run.stop_reason) for run in live] == [
        (Run.Status.COMPLETED, ""),
        (Run.Status.STOPPED, "frequency_limit"),
    ]
    assert LaunchRecord.objects.get(flow=flow, customer_id=ann).launches == 1
