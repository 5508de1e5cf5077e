"""Limitation (SPEC §5): at most `max` passes per period, the rest leave through
`beyond`. A pass only counts when its run goes on to execute a steps group;
changing only `max` keeps the counter, changing mode or period resets it;
rolling windows free places as grants age; calendar windows reset at local
midnight; the cap holds with several workers at once."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db.models import Sum

from channels.models import Message
from flows.engine.batch import EngineContext
from flows.engine.entry import start_flow_for_segment
from flows.engine.move import process_due_runs
from flows.models import LimitationCounter, LimitationGrant, NodePass, Run
from tests.flows import engine_builders as builders
from tests.flows.engine_builders import document, email_template, event_start, make_customers
from tests.flows.engine_kit import edge, launch, node, relaunch, send, static_segment, steps

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def cap(maximum: int, period: dict | None = None, key: str = "cap") -> dict:
    return node(key, "limitation", max=maximum, period=period, alert_below=None)


def capped_doc(
    maximum: int, period: dict | None = None, *, timezone: str = "UTC", between: list | None = None
):
    """start → cap → within: [between…] → hello (email); beyond unwired."""
    nodes = [event_start("never"), cap(maximum, period), steps("hello", send("hello"))]
    edges = [edge("start", "cap")]
    chain = ["cap", *[n["key"] for n in between or []], "hello"]
    nodes += between or []
    edges.append(edge("cap", chain[1], "within"))
    for source, target in zip(chain[1:], chain[2:], strict=False):
        edges.append(edge(source, target))
    return document(nodes, edges, timezone=timezone)


@pytest.fixture
def hello(db):
    return email_template("hello")


_waves = iter(range(1_000_000))


def wave(flow, size: int, at: datetime) -> list[int]:
    """`size` new customers enter the flow at `at` and move as far as they can.
    Returns their run ids."""
    number = next(_waves)
    with time_machine.travel(at, tick=False):
        ids = make_customers(size, prefix=f"w{number}-")
        static_segment(f"wave-{number}", ids)
        start_flow_for_segment(flow=flow, segment_slug=f"wave-{number}")
        process_due_runs(ctx=EngineContext())
    return list(Run.objects.filter(customer_id__in=ids).values_list("id", flat=True))


def within(run_ids: list[int], key: str = "cap") -> int:
    return NodePass.objects.filter(run_id__in=run_ids, node_key=key, port="within").count()


def used(flow, key: str = "cap") -> int:
    return LimitationCounter.objects.filter(flow=flow, node_key=key).aggregate(n=Sum("used"))["n"] or 0


def test_the_cap_lets_max_runs_through_and_the_rest_leave_by_beyond(hello):
    with time_machine.travel(T0, tick=False):
        flow = launch(capped_doc(10))
    runs = wave(flow, 25, T0)
    assert within(runs) == 10
    assert NodePass.objects.filter(run_id__in=runs, node_key="cap", port="beyond").count() == 15
    assert Message.objects.filter(run_id__in=runs).count() == 10
    assert used(flow) == 10
    # `beyond` unwired: those runs end there, completed, without a message.
    beyond = Run.objects.filter(id__in=runs, passes__node_key="cap", passes__port="beyond")
    assert set(beyond.values_list("status", "node_key", "stop_reason")) == {(Run.Status.COMPLETED, "cap", "")}
    # The cap holds for later arrivals too (all-time period).
    assert within(wave(flow, 5, T0 + timedelta(days=30))) == 0
    assert used(flow) == 10


def test_a_run_that_ends_without_a_steps_group_gives_its_place_back(hello):
    """within → a condition nobody meets, its `yes` leading to the steps and
    `no` unwired: the run ends, completed, and its place is free again."""
    condition = node("vip", "condition", rule={"field": "customer.fields.vip", "op": "eq", "value": True})
    with time_machine.travel(T0, tick=False):
        doc = capped_doc(10, between=[condition])
        # vip → hello only on "yes"; "no" is unwired.
        doc["edges"] = [e if e["from"] != "vip" else {**e, "port": "yes"} for e in doc["edges"]]
        flow = launch(doc)
    runs = wave(flow, 25, T0)
    assert within(runs) == 10
    assert used(flow) == 0
    assert not LimitationGrant.objects.exists()
    assert not Message.objects.exists()
    # The places given back go to the next runs.
    assert within(wave(flow, 10, T0 + timedelta(minutes=5))) == 10


def test_a_run_stopped_by_relevance_gives_its_place_back(hello):
    """within → wait an hour → steps relevant for an hour; the worker comes
    back a day later (an outage): the steps are stale, the run stops, its
    place — held while it waited — is freed."""
    pause = node("pause", "wait", mode="fixed", duration="PT1H")
    with time_machine.travel(T0, tick=False):
        doc = capped_doc(10, between=[pause])
        doc["nodes"][2]["config"]["relevance"] = "PT1H"
        flow = launch(doc)
    runs = wave(flow, 12, T0)
    assert within(runs) == 10
    assert used(flow) == 10  # reserved while they wait: the cap holds meanwhile
    assert within(wave(flow, 3, T0 + timedelta(minutes=30))) == 0

    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        process_due_runs(ctx=EngineContext())
    assert Run.objects.filter(id__in=runs, stop_reason="relevance_expired").count() == 10
    assert used(flow) == 0
    assert not Message.objects.exists()
    assert within(wave(flow, 4, T0 + timedelta(days=1, minutes=1))) == 4


def test_a_place_is_used_for_good_once_the_steps_group_executed(hello):
    with time_machine.travel(T0, tick=False):
        flow = launch(capped_doc(3))
    runs = wave(flow, 3, T0)
    grants = LimitationGrant.objects.filter(run_id__in=runs)
    assert set(grants.values_list("state", flat=True)) == {LimitationGrant.State.CONSUMED}
    assert Run.objects.filter(id__in=runs, status=Run.Status.COMPLETED).count() == 3
    assert used(flow) == 3  # ended runs that launched keep their places


def test_changing_only_max_keeps_the_counter(hello):
    with time_machine.travel(T0, tick=False):
        flow = launch(capped_doc(10))
    assert within(wave(flow, 30, T0)) == 10
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        flow = relaunch(flow, capped_doc(15))
    assert within(wave(flow, 30, T0 + timedelta(hours=2))) == 5  # the previous 10 count
    assert used(flow) == 15
    assert LimitationCounter.objects.filter(flow=flow).count() == 1


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, {"unit": "days", "every": 1}),  # all time → periodic
        ({"unit": "days", "every": 1}, {"unit": "days", "every": 2}),  # another period
        ({"unit": "days", "every": 1}, {"unit": "calendar_days", "every": 1}),  # another kind of window
    ],
)
def test_changing_the_period_starts_a_new_counter(hello, before, after):
    with time_machine.travel(T0, tick=False):
        flow = launch(capped_doc(10, before))
    assert within(wave(flow, 30, T0)) == 10
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        flow = relaunch(flow, capped_doc(10, after))
    assert within(wave(flow, 30, T0 + timedelta(minutes=20))) == 10


@pytest.mark.parametrize(("unit", "length"), [("hours", timedelta(hours=1)), ("days", timedelta(days=1))])
def test_rolling_windows_free_places_as_grants_age(hello, unit, length):
    with time_machine.travel(T0, tick=False):
        flow = launch(capped_doc(5, {"unit": unit, "every": 2}))
    assert within(wave(flow, 8, T0)) == 5
    assert within(wave(flow, 8, T0 + length)) == 0  # half-way: still all taken
    assert within(wave(flow, 8, T0 + 2 * length - timedelta(seconds=1))) == 0
    # Two units after the first grants, their places come back one by one.
    assert within(wave(flow, 8, T0 + 2 * length + timedelta(seconds=1))) == 5
    assert within(wave(flow, 8, T0 + 3 * length)) == 0


def test_calendar_days_reset_at_local_midnight(hello):
    """Europe/Berlin in June is UTC+2: 21:30 UTC is 23:30 there, 22:30 UTC is
    already the next local day (while still the same UTC day)."""
    with time_machine.travel(T0, tick=False):
        flow = launch(capped_doc(5, {"unit": "calendar_days", "every": 1}, timezone="Europe/Berlin"))
    late = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)
    assert within(wave(flow, 8, late)) == 5
    assert within(wave(flow, 8, late + timedelta(minutes=29))) == 0  # 23:59 local
    assert within(wave(flow, 8, late + timedelta(minutes=31))) == 5  # 00:01 local, next day
    assert within(wave(flow, 8, late + timedelta(hours=20))) == 0  # same local day


def test_test_runs_count_apart_from_live_runs(hello):
    from flows import lifecycle

    with time_machine.travel(T0, tick=False):
        test_flow = lifecycle.create_flow(document=capped_doc(3))
        test_flow = lifecycle.start_test(flow=test_flow)
    runs = wave(test_flow, 5, T0)
    assert within(runs) == 3
    counters = LimitationCounter.objects.filter(flow=test_flow)
    assert [counter.signature.startswith("test:") for counter in counters] == [True]


# --- Several workers ----------------------------------------------------------------


def two_workers(*, batch: str) -> list[dict]:
    env = builders.worker_env(MAESTRA_BATCH_SIZE=batch)
    barrier = builders.StartTogether()
    workers = [builders.manage("flows_tick", "--no-deliver", env=env) for _ in range(2)]
    barrier.release(2)
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    return [builders.parse_counts(out) for out, _ in outputs]


@pytest.mark.slow
@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_exceed_the_cap():
    email_template("hello")
    flow = launch(capped_doc(300))
    static_segment("everyone", make_customers(2000))
    start_flow_for_segment(flow=flow, segment_slug="everyone")

    started = time.monotonic()
    counts = two_workers(batch="100")
    print(f"limitation, two workers over 2000 runs: {time.monotonic() - started:.1f}s, {counts}")
    assert all(c.get("runs.runs", 0) > 0 for c in counts), counts
    assert sum(c["runs.runs"] for c in counts) == 2000

    runs = list(Run.objects.filter(flow=flow).values_list("id", flat=True))
    assert within(runs) == 300
    assert used(flow) == 300
    assert Message.objects.filter(flow_id=flow.pk).count() == 300
    assert LimitationGrant.objects.filter(state=LimitationGrant.State.CONSUMED).count() == 300


@pytest.mark.slow
@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_lock_two_limitation_counters_in_the_same_order():
    """Half the runs pass `one` then `two`, the other half only `two`, so a
    batch meets both counters in the same round in either order. Workers
    lock them in a fixed order: no deadlock (no batch retried), and both
    caps hold."""
    email_template("hello")
    flow = launch(
        document(
            [
                event_start("never"),
                node(
                    "split", "splitter", branches=[{"name": "x", "percent": 50}, {"name": "y", "percent": 50}]
                ),
                cap(300, key="one"),
                cap(500, key="two"),
                steps("hello", send("hello")),
            ],
            [
                edge("start", "split"),
                edge("split", "one", "x"),
                edge("split", "two", "y"),
                edge("one", "two", "within"),
                edge("two", "hello", "within"),
            ],
        )
    )
    static_segment("everyone", make_customers(2000))
    start_flow_for_segment(flow=flow, segment_slug="everyone")

    counts = two_workers(batch="50")
    print("two limitations, two workers:", counts)
    assert not any(c.get("runs.retried") for c in counts), counts
    assert sum(c["runs.runs"] for c in counts) == 2000

    runs = list(Run.objects.filter(flow=flow).values_list("id", flat=True))
    assert within(runs, "two") == 500
    assert used(flow, "two") == 500
    assert Message.objects.filter(flow_id=flow.pk).count() == 500
    # `one` keeps only the places of runs that went on to the steps.
    consumed_one = LimitationGrant.objects.filter(
        counter__node_key="one", state=LimitationGrant.State.CONSUMED
    )
    assert used(flow, "one") == consumed_one.count() <= 300
    assert within(runs, "one") >= 300  # places given back were handed out again
    assert not LimitationGrant.objects.filter(state=LimitationGrant.State.RESERVED).exists()
    assert Run.objects.filter(flow=flow, status=Run.Status.COMPLETED).count() == 2000


def test_it_warns_once_when_the_places_left_drop_below_alert_below(hello, caplog):
    with time_machine.travel(T0, tick=False):
        doc = capped_doc(10)
        doc["nodes"][1]["config"]["alert_below"] = 3
        flow = launch(doc)
    with caplog.at_level("WARNING", logger="flows.nodes.limitation"):
        wave(flow, 7, T0)  # 3 left: not below
        assert not caplog.records
        wave(flow, 1, T0)  # 2 left
        wave(flow, 5, T0)  # none left, still the same alert
    assert [record.getMessage() for record in caplog.records] == [
        "limitation 'cap' of flow 'Engine test' (all): 2 place(s) left of 10, below 3"
    ]
    assert LimitationCounter.objects.get(flow=flow).alerted


def test_archiving_a_flow_gives_back_the_places_its_runs_reserved(hello):
    """Runs waiting between the cap and the steps hold reserved places; archiving
    stops them, and their places are given back in the same transaction."""
    from flows import lifecycle

    hold = node("hold", "wait", mode="fixed", duration="P1D")
    with time_machine.travel(T0, tick=False):
        flow = launch(capped_doc(3, between=[hold]))
    runs = wave(flow, 5, T0)
    assert within(runs) == 3
    assert LimitationGrant.objects.filter(state=LimitationGrant.State.RESERVED).count() == 3
    assert used(flow) == 3
    lifecycle.archive_flow(flow=flow)
    assert not LimitationGrant.objects.exists()
    assert used(flow) == 0
    assert set(Run.objects.filter(id__in=runs).values_list("status", flat=True)) == {
        Run.Status.STOPPED,
        Run.Status.COMPLETED,
    }
