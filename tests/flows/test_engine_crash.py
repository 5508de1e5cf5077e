"""A worker killed mid-batch loses nothing and does nothing twice.

A real `flows_tick` process works through an audience in small batches and
is killed with SIGKILL, again and again, at random moments while it works;
clean ticks then finish. Every run must end exactly once through each node:
one message per run and steps node, one pass per (run, pass), stats counted
once, no run lost or left behind."""

import random
import signal
import time
from collections import Counter

import pytest
from django.db.models import Count

from channels.models import Message
from flows.engine.entry import start_flow_for_segment
from flows.models import LaunchRecord, NodePass, NodeStat, Run
from tests.flows import engine_builders as builders
from tests.flows.engine_builders import chained, email_template, make_customers
from tests.flows.engine_kit import launch, node, send, static_segment, steps

AUDIENCE = 2000
BATCH = "100"
KILLS = 5


def progress(flow) -> int:
    """Committed work: node passes recorded so far."""
    return NodePass.objects.filter(run__flow=flow).count()


def wait_until_working(worker, flow, *, since: int, timeout: float = 30.0) -> bool:
    """True once the worker has committed a batch (False if it ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            return False
        if progress(flow) > since:
            return True
        time.sleep(0.05)
    raise AssertionError("the worker did not commit a batch in time")


@pytest.mark.slow
@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_killed_workers_lose_nothing_and_do_nothing_twice():
    rng = random.Random(20260601)
    email_template("hello")
    email_template("again")
    # The wait is short enough that later workers wake runs up too.
    pause = node("pause", "wait", mode="fixed", duration="PT1S")
    flow = launch(chained(steps("hello", send("hello")), pause, steps("again", send("again"))))
    static_segment("everyone", make_customers(AUDIENCE))
    assert start_flow_for_segment(flow=flow, segment_slug="everyone") == AUDIENCE
    env = builders.worker_env(MAESTRA_BATCH_SIZE=BATCH)

    killed = attempts = 0
    # A fast machine may finish the work before a kill lands: try again while
    # work is left, up to a bound.
    while killed < KILLS and attempts < 3 * KILLS and progress(flow) < 4 * AUDIENCE:
        attempts += 1
        before = progress(flow)
        worker = builders.manage("flows_tick", "--no-deliver", env=env)
        if wait_until_working(worker, flow, since=before):
            time.sleep(rng.uniform(0.2, 1.5))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            killed += 1
        worker.communicate(timeout=30)
    passes_after_kills = progress(flow)
    assert killed, "the workers finished before they could be killed: nothing was tested"
    assert passes_after_kills > 0

    builders.wait_for_other_connections_to_close()
    finals = []
    for _ in range(6):
        worker = builders.manage("flows_tick", "--no-deliver", env=env)
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        finals.append(builders.parse_counts(out))
        if not Run.objects.filter(flow=flow, status__in=(Run.Status.ACTIVE, Run.Status.WAITING)).exists():
            break
        time.sleep(1)  # runs that just entered the one-second wait
    print(
        f"kills: {killed}; passes recorded before the clean ticks: {passes_after_kills}; clean ticks: {finals}"
    )

    # No run lost, none left behind or half-done.
    runs = Run.objects.filter(flow=flow)
    assert runs.count() == AUDIENCE
    assert set(runs.values_list("status", "node_key", "seq", "launched", "stop_reason")) == {
        (Run.Status.COMPLETED, "again", 3, True, "")
    }
    assert not runs.filter(ended_at__isnull=True).exists()
    assert not runs.filter(due_at__isnull=False).exists()

    # Each steps group exactly once per run.
    messages = Message.objects.filter(flow_id=flow.pk)
    assert messages.count() == 2 * AUDIENCE
    per_run = Counter(tuple(sorted(keys)) for keys in _nodes_by_run(messages).values())
    assert per_run == Counter({("again", "hello"): AUDIENCE})
    assert not messages.values("run_id", "node_key").annotate(n=Count("id")).filter(n__gt=1).exists()

    # One pass per (run, pass_no), all four of them.
    assert NodePass.objects.filter(run__flow=flow).count() == 4 * AUDIENCE
    assert set(NodePass.objects.filter(run__flow=flow).values_list("pass_no", "node_key")) == {
        (0, "start"),
        (1, "hello"),
        (2, "pause"),
        (3, "again"),
    }
    # Stats were written in the killed transactions too, and rolled back with them.
    totals = Counter()
    for key, metric, count in NodeStat.objects.filter(flow=flow).values_list("node_key", "metric", "count"):
        totals[(key, metric)] += count
    assert totals[("hello", "entered")] == AUDIENCE
    assert totals[("again", "entered")] == AUDIENCE
    assert totals[("again", "exit:next")] == AUDIENCE
    # One launch per customer (the re-check ran in killed batches too).
    assert set(LaunchRecord.objects.filter(flow=flow).values_list("launches", flat=True)) == {1}
    assert LaunchRecord.objects.filter(flow=flow).count() == AUDIENCE


def _nodes_by_run(messages) -> dict[int, list[str]]:
    by_run: dict[int, list[str]] = {}
    for run_id, node_key in messages.values_list("run_id", "node_key"):
        by_run.setdefault(run_id, []).append(node_key)
    return by_run
