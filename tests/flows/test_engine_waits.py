"""Wait nodes in the engine (SPEC §5 "Flow time", "Dynamic wait", "Window"):
fixed durations in wall time or exact time, waits already over, dynamic
targets from the customer or the trigger event, and exit windows."""

from datetime import timedelta

import pytest

from customers.models import Customer
from flows.engine.tick import tick
from flows.models import Run
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, chain, document, event_start, node, send, steps, utc

BERLIN = "Europe/Berlin"
WORKING_HOURS = {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "from": "10:00", "to": "18:00"}


def waiting(wait: dict, *, timezone: str = BERLIN, relevance: str = "P7D") -> dict:
    """start → wait → steps (one email)."""
    return document(
        [
            event_start("order_created"),
            {**wait, "key": "wait"},
            steps("mail", send("welcome"), relevance=relevance),
        ],
        chain("start", "wait", "mail"),
        timezone=timezone,
    )


def wait(**config) -> dict:
    return node("wait", "wait", **config)


def enter(flow, customer_id, *, now, occurred_at=None, payload=None) -> Run:
    kit.post_and_tick(now, customer_id, occurred_at=occurred_at, payload=payload)
    return kit.runs_of(flow, customer_id)[-1]


# --- Fixed ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_day_keeps_the_local_wall_time_across_dst(welcome):
    """Europe/Berlin goes to summer time on 2026-03-29: P1D from Saturday
    10:00 ends on Sunday 10:00 local, only 23 hours later."""
    saturday_10_local = utc(2026, 3, 28, 9, 0)  # CET, UTC+1
    flow, ann = kit.launch_at(saturday_10_local, waiting(wait(mode="fixed", duration="P1D")), "ann")
    run = enter(flow, ann, now=saturday_10_local)
    assert run.status == Run.Status.WAITING
    assert run.due_at == utc(2026, 3, 29, 8, 0)  # Sunday 10:00 CEST
    assert run.clock == utc(2026, 3, 29, 8, 0)

    kit.tick_at(utc(2026, 3, 29, 7, 59))
    assert kit.messages_of(flow) == []
    kit.tick_at(utc(2026, 3, 29, 8, 0))
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert kit.path_of(run) == [("start", "next", ""), ("wait", "next", ""), ("mail", "next", "")]
    assert kit.stats_of(flow)[("wait", "exit:next")] == 1


@pytest.mark.django_db
def test_hours_are_exact_across_dst(welcome):
    saturday_10_local = utc(2026, 3, 28, 9, 0)
    flow, ann = kit.launch_at(saturday_10_local, waiting(wait(mode="fixed", duration="PT24H")), "ann")
    run = enter(flow, ann, now=saturday_10_local)
    assert run.due_at == utc(2026, 3, 29, 9, 0)  # Sunday 11:00 CEST


@pytest.mark.django_db
def test_a_wait_that_ended_before_the_event_arrived_goes_straight_on(welcome):
    """The clock starts at the event's occurred_at: a 1-hour wait for an event
    that happened two days ago is already over."""
    now = utc(2026, 6, 10, 12, 0)
    flow, ann = kit.launch_at(now, waiting(wait(mode="fixed", duration="PT1H")), "ann")
    run = enter(flow, ann, now=now, occurred_at=now - timedelta(days=2))
    assert run.status == Run.Status.COMPLETED
    assert kit.path_of(run) == [("start", "next", ""), ("wait", "next", ""), ("mail", "next", "")]
    assert len(kit.messages_of(flow, ann)) == 1
    assert run.clock == now  # set by the steps group


@pytest.mark.django_db
def test_the_wait_counts_from_the_run_clock_not_from_arrival(welcome):
    now = utc(2026, 6, 10, 12, 0)
    flow, ann = kit.launch_at(now, waiting(wait(mode="fixed", duration="PT3H")), "ann")
    run = enter(flow, ann, now=now, occurred_at=now - timedelta(hours=1))
    assert run.due_at == now + timedelta(hours=2)


# --- Dynamic -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_date_only_field_means_midnight_in_the_flow_zone(welcome):
    now = utc(2026, 7, 1, 12, 0)
    flow, ann = kit.launch_at(
        now,
        waiting(wait(mode="dynamic", field="customer.fields.birthday", offset="-P3D")),
        "ann",
        fields={"birthday": "2026-07-20"},
    )
    run = enter(flow, ann, now=now)
    assert run.status == Run.Status.WAITING
    assert run.due_at == utc(2026, 7, 16, 22, 0)  # July 17 00:00 in Berlin (CEST)
    assert run.clock == run.due_at


@pytest.mark.django_db
def test_a_dynamic_wait_reads_the_trigger_event_payload(welcome):
    now = utc(2026, 7, 1, 12, 0)
    flow, ann, bob = kit.launch_at(
        now, waiting(wait(mode="dynamic", field="event.delivery.at", offset="P1D")), "ann", "bob"
    )
    aware = enter(flow, ann, now=now, payload={"delivery": {"at": "2026-07-03T09:30:00+00:00"}})
    naive = enter(flow, bob, now=now, payload={"delivery": {"at": "2026-07-03T09:30:00"}})
    assert aware.due_at == utc(2026, 7, 4, 9, 30)
    assert naive.due_at == utc(2026, 7, 4, 7, 30)  # a naive time is wall time in the flow zone


@pytest.mark.django_db
def test_a_dynamic_wait_reads_its_path_as_the_rule_language_does(welcome):
    """One path reader (customers.rules.read_path) for conditions and waits: a
    name never indexes into a list, so "event.dates.0" finds no date in a list
    of dates (and a key "0" of an object is just a name)."""
    now = utc(2026, 7, 1, 12, 0)
    flow, ann, bob = kit.launch_at(
        now, waiting(wait(mode="dynamic", field="event.dates.0"), timezone="UTC"), "ann", "bob"
    )
    listed = enter(flow, ann, now=now, payload={"dates": ["2026-07-03T09:30:00Z"]})
    named = enter(flow, bob, now=now, payload={"dates": {"0": "2026-07-03T09:30:00Z"}})
    assert (listed.status, listed.stop_reason) == (Run.Status.STOPPED, "dynamic_wait_value_missing")
    assert named.due_at == utc(2026, 7, 3, 9, 30)


@pytest.mark.django_db
def test_a_dynamic_wait_without_offset_waits_for_the_date_itself(welcome):
    now = utc(2026, 7, 1, 12, 0)
    flow, ann = kit.launch_at(
        now,
        waiting(wait(mode="dynamic", field="customer.fields.renewal"), timezone="UTC"),
        "ann",
        fields={"renewal": "2026-08-01T06:00:00Z"},
    )
    assert enter(flow, ann, now=now).due_at == utc(2026, 8, 1, 6, 0)


@pytest.mark.django_db
def test_a_dynamic_target_in_the_past_goes_straight_on_with_the_clock_at_the_target(welcome):
    now = utc(2026, 7, 1, 12, 0)
    doc = document(
        [
            event_start("order_created"),
            wait(mode="dynamic", field="customer.fields.signed_up"),
            node("check", "condition", rule={"field": "customer.fields.signed_up", "op": "exists"}),
        ],
        chain("start", "wait", "check"),
        timezone="UTC",
    )
    flow, ann = kit.launch_at(now, doc, "ann", fields={"signed_up": "2026-06-01"})
    run = enter(flow, ann, now=now)
    assert run.status == Run.Status.COMPLETED
    assert kit.path_of(run) == [("start", "next", ""), ("wait", "next", ""), ("check", "yes", "")]
    assert run.clock == utc(2026, 6, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {},  # missing
        {"birthday": None},
        {"birthday": ""},
        {"birthday": "next tuesday"},
        {"birthday": "2026-13-45"},
        {"birthday": 20260720},
        {"birthday": {"date": "2026-07-20"}},
    ],
    ids=["missing", "null", "empty", "words", "impossible-date", "number", "object"],
)
def test_a_missing_or_unreadable_date_stops_the_run(welcome, fields):
    now = utc(2026, 7, 1, 12, 0)
    flow, ann = kit.launch_at(
        now,
        waiting(wait(mode="dynamic", field="customer.fields.birthday", offset="-P3D")),
        "ann",
        fields=fields,
    )
    run = enter(flow, ann, now=now)
    assert (run.status, run.stop_reason) == (Run.Status.STOPPED, "dynamic_wait_value_missing")
    assert kit.path_of(run) == [("start", "next", ""), ("wait", "", "dynamic_wait_value_missing")]
    assert kit.stats_of(flow)[("wait", "stop:dynamic_wait_value_missing")] == 1
    assert kit.messages_of(flow) == []


@pytest.mark.django_db
def test_an_event_path_without_a_trigger_event_stops_the_run(welcome):
    """A run entered from a segment has no trigger event to read a date from."""
    from flows.engine.entry import start_flow_for_segment
    from tests.flows.engine_kit import static_segment

    now = utc(2026, 7, 1, 12, 0)
    with at(now):
        flow = kit.launch(waiting(wait(mode="dynamic", field="event.delivery_at")))
        ann = kit.customer("ann")
        static_segment("all", [ann])
        start_flow_for_segment(flow=flow, segment_slug="all")
        tick(deliver=False)
    [run] = kit.runs_of(flow, ann)
    assert run.stop_reason == "dynamic_wait_value_missing"


# --- Windows -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_customer_due_outside_the_window_leaves_at_the_next_opening(welcome):
    saturday_noon = utc(2026, 6, 6, 10, 0)  # 12:00 in Berlin
    flow, ann = kit.launch_at(saturday_noon, waiting(wait(mode="window", window=WORKING_HOURS)), "ann")
    run = enter(flow, ann, now=saturday_noon)
    monday_10_local = utc(2026, 6, 8, 8, 0)
    assert (run.status, run.due_at, run.clock) == (Run.Status.WAITING, monday_10_local, monday_10_local)
    kit.tick_at(monday_10_local - timedelta(seconds=1))
    assert kit.messages_of(flow) == []
    kit.tick_at(monday_10_local)
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED


@pytest.mark.django_db
def test_a_customer_inside_the_window_goes_straight_on(welcome):
    wednesday_noon = utc(2026, 6, 10, 10, 0)
    flow, ann = kit.launch_at(wednesday_noon, waiting(wait(mode="window", window=WORKING_HOURS)), "ann")
    run = enter(flow, ann, now=wednesday_noon)
    assert run.status == Run.Status.COMPLETED
    assert run.launched


@pytest.mark.django_db
def test_the_window_closes_at_its_end_time(welcome):
    wednesday_18_local = utc(2026, 6, 10, 16, 0)
    flow, ann = kit.launch_at(wednesday_18_local, waiting(wait(mode="window", window=WORKING_HOURS)), "ann")
    assert enter(flow, ann, now=wednesday_18_local).due_at == utc(2026, 6, 11, 8, 0)


@pytest.mark.django_db
def test_a_fixed_wait_ending_outside_the_window_waits_for_the_next_opening(welcome):
    friday_17_local = utc(2026, 6, 5, 15, 0)
    flow, ann = kit.launch_at(
        friday_17_local, waiting(wait(mode="fixed", duration="PT2H", window=WORKING_HOURS)), "ann"
    )
    run = enter(flow, ann, now=friday_17_local)
    assert run.due_at == utc(2026, 6, 8, 8, 0)  # Friday 19:00 is closed: Monday 10:00


@pytest.mark.django_db
def test_a_dynamic_wait_ending_outside_the_window_waits_for_the_next_opening(welcome):
    now = utc(2026, 6, 1, 12, 0)
    with at(now):
        flow = kit.launch(waiting(wait(mode="dynamic", field="customer.fields.due", window=WORKING_HOURS)))
        ann = kit.customer("ann", fields={"due": "2026-06-13"})  # a Saturday
    assert enter(flow, ann, now=now).due_at == utc(2026, 6, 15, 8, 0)


@pytest.mark.django_db
def test_a_customer_window_uses_the_customer_zone_and_falls_back_to_the_flow_zone(welcome):
    every_day = {
        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "from": "10:00",
        "to": "18:00",
        "timezone": "customer",
    }
    noon_utc = utc(2026, 6, 10, 12, 0)  # 08:00 in New York, 14:00 in Berlin
    with at(noon_utc):
        flow = kit.launch(waiting(wait(mode="window", window=every_day)))
        new_yorker = kit.customer("ny", timezone="America/New_York")
        no_zone = kit.customer("nozone")
        broken_zone = kit.customer("broken")
    Customer.objects.filter(pk=broken_zone).update(timezone="Mars/Olympus")
    ny_run = enter(flow, new_yorker, now=noon_utc)
    assert ny_run.due_at == utc(2026, 6, 10, 14, 0)  # 10:00 in New York
    # Without a (usable) zone of their own: the flow's, Berlin, where it is open.
    assert enter(flow, no_zone, now=noon_utc).status == Run.Status.COMPLETED
    assert enter(flow, broken_zone, now=noon_utc).status == Run.Status.COMPLETED


@pytest.mark.django_db
def test_a_window_in_a_named_zone_ignores_the_flow_zone(welcome):
    tokyo_hours = {**WORKING_HOURS, "timezone": "Asia/Tokyo"}
    wednesday_noon_utc = utc(2026, 6, 10, 12, 0)  # 21:00 in Tokyo: closed
    flow, ann = kit.launch_at(wednesday_noon_utc, waiting(wait(mode="window", window=tokyo_hours)), "ann")
    assert enter(flow, ann, now=wednesday_noon_utc).due_at == utc(2026, 6, 11, 1, 0)  # Thu 10:00 JST


@pytest.mark.django_db
def test_a_dynamic_wait_on_when_the_customer_was_created(welcome):
    """customer.created_at is a date the validation accepts: the wait reads it."""
    signed_up = utc(2026, 7, 1, 8, 0)
    flow, ann = kit.launch_at(
        signed_up, waiting(wait(mode="dynamic", field="customer.created_at", offset="P30D")), "ann"
    )
    run = enter(flow, ann, now=utc(2026, 7, 2, 12, 0))
    assert (run.status, run.due_at) == (Run.Status.WAITING, utc(2026, 7, 31, 8, 0))
