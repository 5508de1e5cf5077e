"""Delivery workers on PostgreSQL: two share one outbox and every message is
sent exactly once (SELECT … FOR UPDATE SKIP LOCKED claims); workers killed
with SIGKILL lose at most the messages inside their provider calls (by
default one per SMTP session: MAESTRA_SMTP_CONNECTIONS)."""

import logging
import random
import signal
import time
from collections import Counter

import pytest
from django.core import mail

from channels.models import Message, Template
from channels.outbox import queue_messages
from customers.models import Customer
from tests.channels.conftest import free_port, send_request, use_backend
from tests.channels.delivery_workers import (
    SENT_BY,
    SLOW_LOCMEM,
    MessageIdRecorder,
    run_two_workers,
    wait_for_session_to_end,
)
from tests.flows.engine_builders import manage, worker_env

MESSAGES = 2000


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_send_each_message_exactly_once(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    use_backend(settings, SLOW_LOCMEM)
    settings.MAESTRA_DELIVERY_CHUNK = 25
    SENT_BY.clear()
    mail.outbox = []

    _queue_service_emails(MESSAGES)

    claimed = {name: counts["claimed"] for name, counts in run_two_workers(limit=100).items()}
    assert sum(claimed.values()) == MESSAGES
    # Both workers did part of the work …
    assert min(SENT_BY.values()) > 0 and len(SENT_BY) == 2, SENT_BY
    # … and no message went out twice.
    message_ids = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(message_ids) == MESSAGES == len(set(message_ids))
    assert Counter(Message.objects.values_list("status", "attempts")) == {("sent", 1): MESSAGES}


# --- delivery workers killed with SIGKILL --------------------------------------------

KILL_MESSAGES = 3000
KILLS = 10
LEASE = 4  # seconds; short so that the test does not wait long for the dead workers' leases
SMTP_CONNECTIONS = 3
GROUP = SMTP_CONNECTIONS  # the default group: one message per session, each inside a provider call


@pytest.mark.slow
@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_killed_delivery_workers_lose_at_most_the_messages_in_flight():
    """Two `deliver_messages` processes send through a real SMTP server on
    loopback, each over several SMTP sessions; one of them is killed with
    SIGKILL, again and again, while it holds a claimed chunk. Every message
    that was not inside a provider call at a kill (its group, at most GROUP
    messages) reaches the server, and none arrives twice."""
    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's session chatter
    rng = random.Random(20261206)
    recorder = MessageIdRecorder(delay=0.002)
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        ids = _queue_service_emails(KILL_MESSAGES)
        base_env = worker_env(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(controller.port),
            EMAIL_USE_TLS="0",
            EMAIL_USE_SSL="0",
            EMAIL_TIMEOUT="10",
            MAESTRA_DELIVERY_CHUNK="20",
            MAESTRA_DELIVERY_GROUP="0",  # the default: one message per session
            MAESTRA_SMTP_CONNECTIONS=str(SMTP_CONNECTIONS),
            MAESTRA_DELIVERY_LEASE=str(LEASE),
        )
        started = 0

        def start_worker():
            nonlocal started
            started += 1
            name = f"maestra-kill-test-{started}"
            return name, manage("deliver_messages", env={**base_env, "PGAPPNAME": name})

        workers = [start_worker(), start_worker()]
        # The counts of the workers that ended by themselves (a killed one
        # prints none, though it may have released claims and expired leases).
        totals: Counter[str] = Counter()
        kills = untried = 0
        in_flight: set[int] = set()
        while kills < KILLS and _left_to_claim():
            slot = rng.randrange(len(workers))
            name, victim = workers[slot]
            # Kill once the worker holds a claimed chunk, somewhere in it.
            if _holds_a_claim(victim, timeout=30):
                time.sleep(rng.uniform(0, 0.03))
            if victim.poll() is None:
                victim.send_signal(signal.SIGKILL)
                victim.communicate(timeout=30)
                kills += 1
                wait_for_session_to_end(name)
                rows = Message.objects.filter(claimed_by__contains=f":{victim.pid}:")
                sending = set(rows.filter(status="sending").values_list("id", flat=True))
                # A worker has one group `sending` at most: the one in its provider calls.
                assert len(sending) <= GROUP, sending
                in_flight |= sending
                untried += rows.filter(status="claimed").count()
            else:
                totals.update(_finished(victim))
            workers[slot] = start_worker()
        for _name, worker in workers:
            totals.update(_finished(worker))
        # The dead workers' leases end; a clean worker then sends what they
        # had claimed and never tried (unless a surviving worker already did).
        time.sleep(LEASE + 1)
        _name, final = start_worker()
        totals.update(_finished(final))
    finally:
        controller.stop()

    received = recorder.received
    duplicates = {i: n for i, n in received.items() if n > 1}
    lost = set(ids) - set(received)
    print(
        f"messages queued: {len(ids)}; kills: {kills}; claimed rows never tried at the kills: {untried};"
        f" inside a provider call at the kills: {len(in_flight)}; arrived at the SMTP server:"
        f" {len(received)}; lost (in flight): {len(lost)}; duplicates: {len(duplicates)};"
        f" counts of the workers that finished: {dict(totals)}"
    )
    assert kills >= KILLS // 2, "the workers finished before they could be killed: nothing was tested"
    assert untried, "no kill found a claimed chunk: the released claims were not tested"
    assert duplicates == {}
    # What did not arrive was inside a provider call when its worker died …
    assert lost <= in_flight
    # … and only such rows have an unknown outcome; everything else was sent once.
    statuses = dict(Message.objects.values_list("id", "status"))
    assert {i for i, status in statuses.items() if status != "sent"} == in_flight
    assert set(Message.objects.filter(id__in=in_flight).values_list("reason", flat=True)) <= {
        "unknown_outcome: the delivery worker stopped while sending; not re-sent to avoid a duplicate"
    }
    assert set(Message.objects.exclude(id__in=in_flight).values_list("attempts", flat=True)) == {1}


def _queue_service_emails(count: int) -> list[int]:
    Template.objects.create(slug="k", name="k", channel="email", purpose="service", subject="S", text="Hi")
    Customer.objects.bulk_create(
        Customer(external_id=f"k{i}", email=f"k{i}@example.com") for i in range(count)
    )
    results = queue_messages(
        requests=[
            send_request(cid, "k", run_id=cid)
            for cid in Customer.objects.order_by("id").values_list("id", flat=True)
        ]
    )
    assert Counter(r.status for r in results.values()) == {"queued": count}
    return sorted(r.id for r in results.values())


def _finished(worker) -> Counter[str]:
    """The counts a worker printed (`claimed=… sent=… …`) once it ended by itself."""
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    return Counter({key: int(value) for key, value in (item.split("=") for item in out.split())})


def _left_to_claim() -> bool:
    return Message.objects.filter(status="queued").exists()


def _holds_a_claim(worker, *, timeout: float) -> bool:
    """True once the worker process has claimed rows it has not tried yet
    (False if it ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            return False
        if Message.objects.filter(status="claimed", claimed_by__contains=f":{worker.pid}:").exists():
            return True
        time.sleep(0.005)
    raise AssertionError("the worker claimed nothing in time")
