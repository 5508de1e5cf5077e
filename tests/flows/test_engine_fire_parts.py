"""A fire larger than one batch enters in parts (flows/nodes/schedule/parts.py):
the fire records customer-id ranges, every worker takes parts (SKIP LOCKED),
and each part's runs enter and move on in the part's own transaction. A part
that raises is rolled back whole and done again; a pause during a fire drops
the rest of it; the launch limit holds inside every part."""

from datetime import timedelta

import pytest
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from channels.models import Message
from flows import lifecycle
from flows.engine.batch import EngineContext
from flows.engine.move import move_entered
from flows.models import FirePart, FlowVersion, LaunchRecord, Run
from flows.nodes.schedule import parts as fire_parts
from flows.nodes.schedule.firing import fire_schedules
from tests.flows import engine_builders as builders
from tests.flows import engine_kit as kit
from tests.flows.engine_kit import at, document, launch_limit, node, send, steps, utc

MONDAY_17 = utc(2026, 6, 1, 17, 0)  # a Monday
FIRE = utc(2026, 6, 2, 10, 0)
DAILY_10 = {"every": "day", "at": "10:00"}
AUDIENCE = 250
PART = 60  # MAESTRA_BATCH_SIZE in these tests: 5 parts (60 × 4 + 10)


def hello_then_wait(**settings) -> dict:
    """start → "hello" (an email) → wait one day, as the benchmark's S1."""
    return document(
        [
            node("start", "schedule", recurrence=DAILY_10, timezone="flow", audience={"segment": "everyone"}),
            steps("hello", send("welcome")),
            node("wait", "wait", mode="fixed", duration="P1D"),
        ],
        [{"from": "start", "to": "hello"}, {"from": "hello", "to": "wait"}],
        **settings,
    )


@pytest.fixture
def audience(welcome) -> list[int]:
    return kit.bulk_customers(AUDIENCE, segment="everyone")


@pytest.fixture(autouse=True)
def small_parts():
    with override_settings(MAESTRA_BATCH_SIZE=PART):
        yield


def launched(**settings):
    with at(MONDAY_17):
        return kit.launch(hello_then_wait(**settings))


def assert_entered_once_and_waiting(flow, customers: list[int]) -> None:
    runs = Run.objects.filter(flow=flow)
    assert sorted(runs.values_list("customer_id", flat=True)) == sorted(customers)
    assert set(runs.values_list("status", "node_key")) == {(Run.Status.WAITING, "wait")}
    # The wait holds them a day from when their part moved them.
    assert not runs.filter(due_at__lt=FIRE + timedelta(days=1)).exists()
    messages = Message.objects.filter(flow_id=flow.pk)
    assert messages.count() == len(customers)
    assert not messages.values("customer_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    records = LaunchRecord.objects.filter(flow=flow)
    assert records.count() == len(customers)
    assert set(records.values_list("launches", flat=True)) == {1}
    stats = kit.stats_of(flow)
    for key in (("start", "entered"), ("start", "exit:next"), ("hello", "entered"), ("hello", "exit:next")):
        assert stats[key] == len(customers), key
    assert stats[("wait", "entered")] == len(customers)
    assert not FirePart.objects.exists()


@pytest.mark.django_db
def test_a_fire_larger_than_a_part_enters_everyone_once_and_moves_them_on(audience):
    flow = launched()
    counts = kit.tick_at(FIRE)
    assert counts["schedules.fired"] == 1
    assert counts["schedules.parts"] == 5
    assert counts["schedules.parts_done"] == 5
    assert counts["schedules.runs_started"] == AUDIENCE
    assert counts["runs.runs"] == AUDIENCE
    assert counts["runs.waiting"] == AUDIENCE
    assert_entered_once_and_waiting(flow, audience)
    assert FlowVersion.objects.get(pk=flow.live_version_id).next_fire_at == FIRE + timedelta(days=1)
    # Nothing due: the runs moved on in their part's transaction.
    assert not kit.tick_at(FIRE + timedelta(minutes=1)).get("runs.runs")


@pytest.mark.django_db
def test_the_fire_writes_id_ranges_that_cover_the_audience_without_overlap(audience):
    flow = launched()
    with at(FIRE):
        assert fire_schedules(ctx=EngineContext()) == {"fired": 1, "parts": 5}
    parts = list(FirePart.objects.order_by("id").values_list("after_id", "upto_id", "clock", "fire_size"))
    assert [after for after, *_ in parts] == [0, *(upto for _, upto, *_ in parts[:-1])]
    assert parts[-1][1] == max(audience)
    assert {(clock, size) for *_, clock, size in parts} == {(FIRE, AUDIENCE)}
    sizes = [sum(1 for customer in audience if after < customer <= upto) for after, upto, *_ in parts]
    assert sizes == [PART] * 4 + [AUDIENCE - 4 * PART]
    assert Run.objects.filter(flow=flow).count() == 0  # nobody entered yet: the parts do it


@pytest.mark.django_db
def test_a_fire_in_parts_wakes_the_engine_so_other_workers_share_it(audience, monkeypatch):
    from flows.nodes.schedule import firing

    woken = []
    monkeypatch.setattr(firing, "wake", woken.append)
    launched()
    with at(FIRE):
        fire_schedules(ctx=EngineContext())
    assert woken == [firing.ENGINE]


@pytest.mark.django_db
def test_an_empty_audience_writes_no_parts(welcome):
    kit.customer("outside")
    kit.static_segment("everyone", [])
    flow = launched()
    counts = kit.tick_at(FIRE)
    assert counts["schedules.fired"] == 1
    assert "schedules.parts" not in counts and "schedules.runs_started" not in counts
    assert not FirePart.objects.exists()
    assert Run.objects.filter(flow=flow).count() == 0


@pytest.mark.django_db
def test_an_audience_of_one_part_enters_in_the_fire_itself(welcome):
    customers = kit.bulk_customers(PART, segment="everyone")
    flow = launched()
    with at(FIRE):
        assert fire_schedules(ctx=EngineContext()) == {"fired": 1, "runs_started": PART}
    assert not FirePart.objects.exists()
    kit.tick_at(FIRE)
    assert_entered_once_and_waiting(flow, customers)


@pytest.mark.django_db
def test_a_part_that_raises_is_rolled_back_and_done_again_on_the_next_tick(audience, monkeypatch):
    flow = launched()
    real_insert = fire_parts.insert_runs
    calls = []

    def insert_then_fail_once(**kwargs):
        rows = real_insert(**kwargs)  # the runs are written, then the part fails
        calls.append(len(rows))
        if len(calls) == 2:
            raise ValueError("boom in the second part")
        return rows

    monkeypatch.setattr(fire_parts, "insert_runs", insert_then_fail_once)
    counts = kit.tick_at(FIRE)
    assert counts["schedules.errors"] == 1
    assert counts["schedules.runs_started"] == AUDIENCE - PART
    assert FirePart.objects.count() == 1
    assert FirePart.objects.get().attempts == 1
    assert Run.objects.filter(flow=flow).count() == AUDIENCE - PART

    counts = kit.tick_at(FIRE + timedelta(minutes=1))
    assert counts["schedules.runs_started"] == PART
    assert "schedules.errors" not in counts
    assert_entered_once_and_waiting(flow, audience)


@pytest.mark.django_db
def test_a_part_the_database_aborts_to_break_a_deadlock_is_done_again_at_once(audience, monkeypatch):
    import psycopg
    from django.db import OperationalError

    flow = launched()
    real_insert = fire_parts.insert_runs
    calls = []

    def insert_then_deadlock_once(**kwargs):
        rows = real_insert(**kwargs)
        calls.append(len(rows))
        if len(calls) == 1:
            error = OperationalError("deadlock detected")
            error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
            raise error
        return rows

    monkeypatch.setattr(fire_parts, "insert_runs", insert_then_deadlock_once)
    counts = kit.tick_at(FIRE)
    assert "schedules.errors" not in counts
    assert counts["schedules.parts_done"] == 5
    assert counts["schedules.runs_started"] == AUDIENCE
    assert_entered_once_and_waiting(flow, audience)


@pytest.mark.django_db
def test_a_move_that_raises_leaves_the_parts_runs_due_for_the_claim(audience, monkeypatch):
    """The move is in a savepoint (move_entered): the part still enters, and
    process_due_runs moves its runs, once."""
    flow = launched()
    from flows.engine import move as engine

    real_move = engine.move_batch
    calls = []

    def move_then_fail_once(runs, **kwargs):
        calls.append(len(runs))
        if len(calls) == 1:
            raise ValueError("boom in the first move")
        return real_move(runs, **kwargs)

    monkeypatch.setattr(engine, "move_batch", move_then_fail_once)
    counts = kit.tick_at(FIRE)
    assert counts["schedules.runs_started"] == AUDIENCE
    assert counts["runs.runs"] == AUDIENCE  # PART of them by the claim
    assert_entered_once_and_waiting(flow, audience)


@pytest.mark.django_db
def test_a_part_that_keeps_raising_drops_its_fire_after_the_last_attempt(audience, monkeypatch):
    flow = launched()

    def fail(**kwargs):
        raise ValueError("always")

    monkeypatch.setattr(fire_parts, "insert_runs", fail)
    for minute in range(fire_parts.MAX_PART_ATTEMPTS):
        counts = kit.tick_at(FIRE + timedelta(minutes=minute))
        assert counts["schedules.errors"] >= 1
    assert not FirePart.objects.exists()
    assert Run.objects.filter(flow=flow).count() == 0
    from maestra.audit.models import AuditEntry

    assert AuditEntry.objects.filter(action="flow.schedule_failed").exists()
    # The schedule goes on: the next day's fire is armed.
    assert FlowVersion.objects.get(pk=flow.live_version_id).next_fire_at == FIRE + timedelta(days=1)


@pytest.mark.django_db
def test_a_pause_during_a_fire_drops_the_remaining_parts(audience):
    flow = launched()
    with at(FIRE):
        fire_schedules(ctx=EngineContext())
        first = fire_parts._enter_part(ctx=EngineContext(), move=move_entered, exclude=set(), claimed=[])
    assert first["runs_started"] == PART
    lifecycle.pause_flow(flow=flow)
    counts = kit.tick_at(FIRE + timedelta(minutes=1))
    assert counts["schedules.parts_dropped"] == 4
    assert "schedules.runs_started" not in counts
    assert not FirePart.objects.exists()
    assert Run.objects.filter(flow=flow).count() == PART
    lifecycle.resume_flow(flow=flow)
    assert not kit.tick_at(FIRE + timedelta(minutes=2)).get("schedules.runs_started")
    assert Run.objects.filter(flow=flow).count() == PART


@pytest.mark.django_db
def test_an_end_date_passed_during_a_fire_drops_the_remaining_parts(audience):
    flow = launched(schedule={"start_at": None, "end_at": "2026-06-02T10:30:00+00:00"})
    with at(FIRE):
        fire_schedules(ctx=EngineContext())
    counts = kit.tick_at(utc(2026, 6, 2, 10, 30))
    assert counts["schedules.parts_dropped"] == 5
    assert Run.objects.filter(flow=flow).count() == 0


@pytest.mark.django_db
def test_the_launch_limit_keeps_customers_out_inside_the_parts(audience):
    flow = launched(launch_limit=launch_limit("once"))
    # Customers in three different parts launched before: they stay out.
    kept_out = [audience[5], audience[PART * 2 + 1], audience[-1]]
    LaunchRecord.objects.bulk_create(
        [
            LaunchRecord(flow=flow, customer_id=customer, launches=1, first_launched_at=MONDAY_17)
            for customer in kept_out
        ]
    )
    counts = kit.tick_at(FIRE)
    assert counts["schedules.runs_started"] == AUDIENCE - 3
    entered = set(Run.objects.filter(flow=flow).values_list("customer_id", flat=True))
    assert entered == set(audience) - set(kept_out)
    # The next day's fire: everybody launched once, nobody enters.
    counts = kit.tick_at(FIRE + timedelta(days=1))
    assert not counts.get("schedules.runs_started")
    assert not FirePart.objects.exists()


@pytest.mark.django_db
def test_the_audience_preview_counts_who_then_enters_in_parts(audience):
    from flows.selectors.audience import audience_preview

    flow = launched(launch_limit=launch_limit("once"))
    LaunchRecord.objects.create(flow=flow, customer_id=audience[7], launches=1, first_launched_at=MONDAY_17)
    version = FlowVersion.objects.get(pk=flow.live_version_id)
    preview = audience_preview(version=version, now=FIRE)
    counts = kit.tick_at(FIRE)
    assert preview["would_enter"] == counts["schedules.runs_started"] == AUDIENCE - 1


@pytest.mark.slow
@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_parts_and_enter_nobody_twice(welcome):
    """Two flows_tick processes take the parts of one fire (SKIP LOCKED)."""
    total = 4000
    customers = kit.bulk_customers(total, segment="everyone")
    flow = kit.launch(hello_then_wait())
    now = timezone.now()
    FlowVersion.objects.filter(pk=flow.live_version_id).update(next_fire_at=now - timedelta(minutes=1))
    with override_settings(MAESTRA_BATCH_SIZE=100):
        counts = fire_schedules(ctx=EngineContext())
    assert counts["parts"] == 40
    env = builders.worker_env(MAESTRA_BATCH_SIZE="100")
    shares = builders.ticks_side_by_side(2, env=env, timeout=180, label=f"two workers, {total} runs in parts")
    assert sum(share.get("schedules.parts_done", 0) for share in shares) == 40
    assert sum(share.get("schedules.runs_started", 0) for share in shares) == total
    assert all(share.get("schedules.parts_done", 0) > 0 for share in shares), shares
    runs = Run.objects.filter(flow=flow)
    assert runs.count() == total
    assert runs.values("customer_id").distinct().count() == total
    assert set(runs.values_list("status", "node_key")) == {(Run.Status.WAITING, "wait")}
    assert sorted(runs.values_list("customer_id", flat=True)) == customers
    assert Message.objects.filter(flow_id=flow.pk).count() == total
    assert set(LaunchRecord.objects.filter(flow=flow).values_list("launches", flat=True)) == {1}
    assert kit.stats_of(flow)[("start", "entered")] == total
    assert not FirePart.objects.exists()
