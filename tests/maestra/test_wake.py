"""Wake-ups (maestra/wake/): after a commit, once per target per transaction,
coalesced by the flag; never after a rollback; the apps' hooks wake the
right target; on PostgreSQL the listener answers a NOTIFY at once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction

from customers.models import Customer
from customers.services.customers import upsert_customers
from customers.services.events import store_events
from maestra.wake import DELIVERY, ENGINE, core, wake
from maestra.wake.listener import Dispatcher, Listener
from maestra.wake.models import WakeFlag

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def queued(monkeypatch) -> list[str]:
    """The targets whose run was queued on the broker, in order."""
    calls: list[str] = []
    monkeypatch.setattr(core, "_queue", calls.append)
    return calls


def test_the_apps_register_their_targets():
    assert core.targets() == {ENGINE: "flows.tasks.sweep_task", DELIVERY: "channels.tasks.deliver_task"}


def test_an_unknown_target_is_a_bug():
    with pytest.raises(ValueError, match="unknown wake target 'nope'"):
        wake("nope")


@pytest.mark.django_db
def test_a_transaction_wakes_each_target_once_and_only_at_commit(django_capture_on_commit_callbacks, queued):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for _ in range(3):
            wake(ENGINE)
        wake(DELIVERY)
        wake(ENGINE)
        assert queued == []  # nothing before the commit
    assert len(callbacks) == 2
    assert queued == [DELIVERY, ENGINE] or queued == [ENGINE, DELIVERY]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_wakes_nothing(queued):
    with pytest.raises(RuntimeError), transaction.atomic():
        wake(ENGINE)
        raise RuntimeError("rolled back")
    assert queued == []
    assert not WakeFlag.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_wake_in_a_rolled_back_savepoint_is_registered_again(queued):
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            wake(ENGINE)
            raise RuntimeError("savepoint rolled back")
        wake(ENGINE)
    assert queued == [ENGINE]


@pytest.mark.django_db(transaction=True)
def test_wakes_coalesce_while_a_run_is_pending(queued):
    with time_machine.travel(T0, tick=False):
        for _ in range(5):
            wake(ENGINE)  # autocommit: each one is its own transaction
        assert queued == [ENGINE]
        # The run claims the flag before it works: the next wake queues again.
        assert core.claim(ENGINE) is True
        assert core.claim(ENGINE) is False
        wake(ENGINE)
        wake(ENGINE)
        assert queued == [ENGINE, ENGINE]
    flag = WakeFlag.objects.get(target=ENGINE)
    assert flag.queued_at == flag.requested_at == T0


@pytest.mark.django_db(transaction=True)
def test_a_pending_run_never_claimed_counts_as_lost_after_the_window(settings, queued):
    settings.MAESTRA_WAKE_COALESCE_SECONDS = 10
    with time_machine.travel(T0, tick=False):
        wake(ENGINE)
    with time_machine.travel(T0 + timedelta(seconds=9), tick=False):
        wake(ENGINE)
    assert queued == [ENGINE]
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False):
        wake(ENGINE)
    assert queued == [ENGINE, ENGINE]


@pytest.mark.django_db(transaction=True)
def test_switched_off_nothing_is_woken(settings, queued):
    settings.MAESTRA_WAKE = False
    wake(ENGINE)
    assert core.wake_all() == 0
    assert queued == []
    assert not WakeFlag.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_never_fails_the_caller(monkeypatch):
    def down(target):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(core, "_queue", down)
    with transaction.atomic():
        Customer.objects.create(external_id="c1")
        wake(ENGINE)
    assert Customer.objects.filter(external_id="c1").exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_claims_the_flag_and_a_second_run_for_the_same_wake_returns_at_once(monkeypatch, queued):
    runs = []
    monkeypatch.setattr("flows.tasks.sweep_task", lambda: runs.append("tick") or {"events": 1})
    wake(ENGINE)
    assert core.run(ENGINE) == {"events": 1}
    assert core.run(ENGINE) == {"skipped": 1}
    assert runs == ["tick"]
    # A cluster's first wake-up and `wake_listener --once` run without a flag.
    assert core.run(ENGINE, force=True) == {"events": 1}
    assert runs == ["tick", "tick"]


@pytest.mark.django_db(transaction=True)
def test_a_queued_task_runs_the_target_through_django_q(monkeypatch, settings):
    import django_q.conf

    runs = []
    monkeypatch.setattr("channels.tasks.deliver_task", lambda: runs.append("drain") or {})
    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)
    wake(DELIVERY)
    assert runs == ["drain"]


@pytest.mark.django_db(transaction=True)
def test_stored_events_and_customer_changes_wake_the_engine(queued):
    upsert_customers(rows=[{"external_id": "c1", "email": "c1@example.com"}])
    assert queued == [ENGINE]
    core.claim(ENGINE)
    customer_id = Customer.objects.get(external_id="c1").id
    event = {"external_id": "e1", "customer_id": customer_id, "type": "order", "occurred_at": T0}
    store_events(events=[event])
    assert queued == [ENGINE, ENGINE]
    core.claim(ENGINE)
    # A duplicate stores nothing, so it wakes nothing.
    store_events(events=[event])
    assert queued == [ENGINE, ENGINE]


@pytest.mark.django_db(transaction=True)
def test_every_target_is_woken_when_a_worker_starts(queued):
    assert core.wake_all() == 2
    assert sorted(queued) == [DELIVERY, ENGINE]


@pytest.mark.django_db
def test_the_dispatcher_runs_a_target_once_more_when_notified_while_it_runs(monkeypatch):
    started, release = threading.Event(), threading.Event()
    runs = []

    def slow_run(target, *, force=False):
        runs.append(target)
        started.set()
        release.wait(5)
        return {}

    monkeypatch.setattr(core, "run", slow_run)
    dispatcher = Dispatcher()
    dispatcher.submit(ENGINE)
    assert started.wait(5)
    dispatcher.submit(ENGINE)
    dispatcher.submit(ENGINE)  # coalesced with the one before
    release.set()
    dispatcher.join(5)
    assert runs == [ENGINE, ENGINE]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_listener_runs_a_woken_target_at_once_and_only_one_listener_holds_the_lock(monkeypatch):
    runs = []
    done = threading.Event()

    def tick():
        runs.append("tick")
        done.set()
        return {}

    monkeypatch.setattr("flows.tasks.sweep_task", tick)
    monkeypatch.setattr(core, "_queue", lambda target: None)  # only the NOTIFY path
    first, second = Listener(), Listener()
    threads = [threading.Thread(target=listener.serve, daemon=True) for listener in (first, second)]
    try:
        threads[0].start()
        assert first.holding.wait(10)
        threads[1].start()
        time.sleep(0.5)
        assert not second.holding.is_set()  # the advisory lock is taken
        first.dispatcher.join(5)  # the runs of its take-over (no flag: nothing to do)
        assert runs == []
        wake(ENGINE)
        assert done.wait(10), "the listener did not run the woken engine"
        assert runs == ["tick"]
        # The first listener goes away: the second takes over.
        first.stop.set()
        threads[0].join(10)
        assert second.holding.wait(10)
    finally:
        first.stop.set()
        second.stop.set()
        for thread in threads:
            if thread.ident is not None:
                thread.join(10)
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_starting_worker_wakes_every_target_but_not_in_sync_mode(settings, monkeypatch, queued):
    import django_q.conf

    from maestra.wake.listener import on_worker_spawn

    settings.MAESTRA_WAKE_LISTENER = False
    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)
    on_worker_spawn(proc_name="Process-1")
    assert queued == []
    monkeypatch.setattr(django_q.conf.Conf, "SYNC", False)
    on_worker_spawn(proc_name="Process-1")
    assert sorted(queued) == [DELIVERY, ENGINE]
