"""The periodic django-q2 tasks: registered on migrate (one row each, however
often migrate runs), and run by a real `qcluster` against the database."""

import signal
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Schedule, Task
from django_q.scheduler import scheduler

from channels.models import Message
from channels.tasks import deliver_task
from flows.engine.entry import start_flow_for_segment
from flows.models import Run
from flows.periodic_tasks import PERIODIC_TASKS
from flows.tasks import sweep_task
from tests.flows import engine_builders as builders
from tests.flows.engine_builders import document, email_template, event_start, make_customers
from tests.flows.engine_kit import edge, launch, send, static_segment, steps


def periodic_rows() -> list[tuple]:
    return sorted(
        Schedule.objects.filter(name__in=PERIODIC_TASKS).values_list(
            "name", "func", "schedule_type", "minutes", "repeats"
        )
    )


EXPECTED = [
    ("maestra-deliver", "channels.tasks.deliver_task", Schedule.MINUTES, 1, -1),
    ("maestra-sweep", "flows.tasks.sweep_task", Schedule.MINUTES, 1, -1),
]


@pytest.mark.django_db(transaction=True)
def test_migrate_registers_the_two_periodic_tasks_once():
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    assert periodic_rows() == EXPECTED


@pytest.mark.django_db(transaction=True)
def test_migrate_puts_back_what_the_code_says_and_removes_duplicates(settings):
    Schedule.objects.filter(name="maestra-sweep").update(func="somewhere.else", minutes=30)
    Schedule.objects.create(
        name="maestra-deliver", func="flows.tick.deliver_task", schedule_type=Schedule.HOURLY
    )
    kept = Schedule.objects.filter(name="maestra-deliver").order_by("pk").first().pk
    call_command("migrate", verbosity=0)
    assert periodic_rows() == EXPECTED
    assert Schedule.objects.get(name="maestra-deliver").pk == kept

    settings.MAESTRA_SWEEP_SECONDS = 300
    call_command("migrate", verbosity=0)
    assert {row[3] for row in periodic_rows()} == {5}


def hello_flow():
    email_template("hello")
    return launch(document([event_start("never"), steps("hello", send("hello"))], [edge("start", "hello")]))


@pytest.mark.django_db
def test_the_sweep_moves_runs_and_leaves_delivery_to_its_own_task(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    flow = hello_flow()
    static_segment("everyone", make_customers(4))
    start_flow_for_segment(flow=flow, segment_slug="everyone")

    swept = sweep_task()
    assert swept["runs.completed"] == 4
    assert not any(key.startswith("messages.") for key in swept)
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.QUEUED}

    delivered = deliver_task()
    assert delivered["sent"] == 4
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.SENT}
    assert sweep_task() == {}


def wait_for(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def fire_now(name: str) -> str:
    """Make the schedule due and run django-q2's scheduler once (what the
    cluster's guard does about every 30 s); returns the id of the task it
    queued for the cluster."""
    Schedule.objects.filter(name=name).update(next_run=timezone.now() - timedelta(seconds=1))
    with mock.patch.object(Conf, "SYNC", False):  # queue it, never run it here
        scheduler(broker=get_broker())
    return Schedule.objects.get(name=name).task


@pytest.mark.slow
@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_cluster_runs_the_periodic_sweep_and_delivery(settings):
    # The periodic tasks alone (the safety net): no wake-up queued here
    # (the customers' events would wake the engine) nor in the cluster.
    settings.MAESTRA_WAKE = False
    flow = hello_flow()
    static_segment("everyone", make_customers(20))
    start_flow_for_segment(flow=flow, segment_slug="everyone")
    Schedule.objects.filter(name__in=PERIODIC_TASKS).update(next_run=timezone.now() + timedelta(hours=1))

    started = time.monotonic()
    cluster = builders.manage(
        "qcluster",
        env=builders.worker_env(
            Q_WORKERS="1",
            MAESTRA_EMAIL_CHANNEL_BACKEND="channels.backends.console.ConsoleBackend",
            MAESTRA_WAKE="false",
        ),
    )
    try:
        sweep_id = fire_now("maestra-sweep")
        sweep = wait_for(
            lambda: Task.objects.filter(id=sweep_id).first(), timeout=25, what="the cluster to run the sweep"
        )
        assert sweep.success, sweep.result
        assert sweep.func == "flows.tasks.sweep_task"
        assert sweep.result["runs.completed"] == 20
        assert Run.objects.filter(flow=flow, status=Run.Status.COMPLETED).count() == 20
        assert Message.objects.filter(status=Message.Status.QUEUED).count() == 20

        deliver_id = fire_now("maestra-deliver")
        delivered = wait_for(
            lambda: Task.objects.filter(id=deliver_id).first(), timeout=20, what="the cluster to deliver"
        )
        assert delivered.success, delivered.result
        assert delivered.result["sent"] == 20
        assert Message.objects.filter(status=Message.Status.SENT).count() == 20
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            _, err = cluster.communicate(timeout=20)
        except Exception:
            cluster.kill()
            cluster.communicate()
            raise
    print(f"qcluster: {time.monotonic() - started:.1f}s")
    assert cluster.returncode in (0, -signal.SIGTERM), err[-2000:]
