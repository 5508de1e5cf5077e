"""Several workers share the due runs (SELECT … FOR UPDATE SKIP LOCKED): no run
is done twice, none is skipped, and each worker gets a share. A batch the
database aborts to break a deadlock is rolled back whole and done again."""

import time
from collections import Counter
from unittest import mock

import psycopg
import pytest
from django.db import OperationalError, connection, transaction
from django.db.models import Count

from channels.models import Message
from flows.engine import move as engine
from flows.engine.batch import EngineContext
from flows.engine.entry import start_flow_for_segment
from flows.engine.move import claim_due_runs, process_due_runs
from flows.models import Flow, LaunchRecord, Run
from tests.flows import engine_builders as builders
from tests.flows.engine_builders import document, email_template, event_start, make_customers
from tests.flows.engine_kit import edge, launch, send, static_segment, steps

AUDIENCE = 4000


def hello_flow():
    email_template("hello")
    return launch(document([event_start("never"), steps("hello", send("hello"))], [edge("start", "hello")]))


@pytest.mark.slow
@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_due_runs_and_do_none_twice():
    flow = hello_flow()
    static_segment("everyone", make_customers(AUDIENCE))
    assert start_flow_for_segment(flow=flow, segment_slug="everyone") == AUDIENCE
    env = builders.worker_env(MAESTRA_BATCH_SIZE="100")

    counts = builders.ticks_side_by_side(2, env=env, timeout=120, label=f"two workers, {AUDIENCE} runs")

    # Each run was claimed by exactly one worker, and both worked.
    shares = [c.get("runs.runs", 0) for c in counts]
    assert sum(shares) == AUDIENCE
    assert all(share > 0 for share in shares), shares
    assert sum(c.get("runs.completed", 0) for c in counts) == AUDIENCE

    assert Run.objects.filter(flow=flow, status=Run.Status.COMPLETED).count() == AUDIENCE
    messages = Message.objects.filter(flow_id=flow.pk)
    assert messages.count() == AUDIENCE
    assert messages.values("run_id").distinct().count() == AUDIENCE
    assert set(LaunchRecord.objects.filter(flow=flow).values_list("launches", flat=True)) == {1}


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_claimed_run_is_skipped_by_another_worker_not_waited_for():
    """SKIP LOCKED: while one transaction holds a batch, a second claim gets
    the other due runs at once, and nothing when all are held."""
    import threading

    flow = hello_flow()
    static_segment("everyone", make_customers(10))
    start_flow_for_segment(flow=flow, segment_slug="everyone")
    holding = threading.Event()
    release = threading.Event()
    held: list[int] = []

    def hold_six():
        try:
            with transaction.atomic():
                held.extend(run.id for run in claim_due_runs(ctx=EngineContext(), limit=6))
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_six)
    holder.start()
    try:
        assert holding.wait(10)
        with transaction.atomic():
            started = time.monotonic()
            others = [run.id for run in claim_due_runs(ctx=EngineContext(), limit=10)]
            assert time.monotonic() - started < 2
        assert len(held) == 6 and len(others) == 4
        assert not set(held) & set(others)
    finally:
        release.set()
        holder.join()


def _deadlock() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
    return error


@pytest.mark.django_db
def test_a_batch_aborted_by_a_deadlock_is_rolled_back_and_done_again():
    flow = hello_flow()
    static_segment("everyone", make_customers(5))
    start_flow_for_segment(flow=flow, segment_slug="everyone")
    real_write = engine.write_batch
    calls = Counter()

    def write_then_deadlock(runs, result):
        calls["write"] += 1
        real_write(runs, result)  # everything written, then the database aborts
        if calls["write"] == 1:
            raise _deadlock()

    with mock.patch.object(engine, "write_batch", write_then_deadlock):
        counts = process_due_runs(ctx=EngineContext())
    assert counts["retried"] == 1
    assert counts["runs"] == 5 and counts["completed"] == 5
    assert Message.objects.filter(flow_id=flow.pk).count() == 5
    assert not Message.objects.values("run_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert set(LaunchRecord.objects.values_list("launches", flat=True)) == {1}


@pytest.mark.django_db
def test_a_batch_that_keeps_deadlocking_gives_up_with_the_error():
    hello_flow()
    static_segment("everyone", make_customers(2))
    flow = Flow.objects.get()
    start_flow_for_segment(flow=flow, segment_slug="everyone")
    with mock.patch.object(engine, "write_batch", side_effect=_deadlock()), pytest.raises(OperationalError):
        process_due_runs(ctx=EngineContext())
    # Nothing moved: the runs wait at the start for the next tick.
    assert set(Run.objects.values_list("status", "node_key")) == {(Run.Status.ACTIVE, "start")}
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_other_database_errors_are_not_retried():
    hello_flow()
    static_segment("everyone", make_customers(2))
    start_flow_for_segment(flow=Flow.objects.get(), segment_slug="everyone")
    error = OperationalError("disk I/O error")
    with (
        mock.patch.object(engine, "write_batch", side_effect=error) as write,
        pytest.raises(OperationalError),
    ):
        process_due_runs(ctx=EngineContext())
    assert write.call_count == 1
