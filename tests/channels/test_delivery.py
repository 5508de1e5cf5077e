"""The delivery worker: claims, leases, outcomes, loops (locmem email, console and
test backends; the HTTP and SMTP backends have their own files)."""

import io
import os
import pydoc
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command

from channels.backends import Backend, Outcome, SendResult
from channels.backends.email import DjangoEmailBackend
from channels.delivery import claim, deliver_all_due, deliver_due, drain, expire_leases, release_claims
from channels.models import Message
from channels.outbox import queue_messages
from channels.tasks import deliver_task
from tests.channels.conftest import send_request, use_backend

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def queue(make_template, make_customer):
    make_template("t", purpose="service")
    make_template("sms", channel="sms", purpose="service", text="Code {{ promo_code }}")
    customers = {}

    def make(n: int = 1, *, channel: str = "email", start: int = 0) -> list[int]:
        reqs = []
        for i in range(start, start + n):
            customer = customers.get(i) or make_customer()
            customers[i] = customer
            reqs.append(
                send_request(
                    customer.id,
                    "t" if channel == "email" else "sms",
                    channel,
                    run_id=1000 + i,
                    node_key=channel,
                    context={"promo_code": f"P{i}"},
                )
            )
        results = queue_messages(requests=reqs)
        return [results[r.key].id for r in reqs]

    return make


class RaisingBackend(Backend):
    def send(self, message):
        raise RuntimeError("backend bug")


class ExpiringBackend(Backend):
    """Sends, but first lets the lease run out and a sweep declare the outcome unknown."""

    def send(self, message):
        Message.objects.filter(id=message.id).update(lease_until=T0 - timedelta(seconds=1))
        expire_leases(now=T0)
        return SendResult(outcome=Outcome.SENT, provider_id="late")


class SlowRetryBackend(Backend):
    def send(self, message):
        return SendResult(outcome=Outcome.RETRY, reason="http_503", retry_after=10 * 86400)


def test_it_sends_due_messages_and_records_them(queue):
    with time_machine.travel(T0, tick=False):
        [message_id] = queue()
        assert deliver_due() == {"claimed": 1, "sent": 1, "retried": 0, "failed": 0, "expired": 0}
    row = Message.objects.get(id=message_id)
    assert (row.status, row.attempts, row.sent_at, row.lease_until) == ("sent", 1, T0, None)
    assert row.provider_id == f"<maestra-{message_id}@localhost>"
    assert [m.to for m in mail.outbox] == [[row.rendered["to"]]]
    # Nothing is sent twice.
    assert deliver_due()["claimed"] == 0
    assert len(mail.outbox) == 1


def test_only_queued_due_rows_are_claimed(queue):
    with time_machine.travel(T0, tick=False):
        ids = queue(6)
        Message.objects.filter(id=ids[0]).update(next_attempt_at=T0 + timedelta(minutes=1))
        Message.objects.filter(id=ids[1]).update(status="not_sent")
        Message.objects.filter(id=ids[2]).update(status="failed")
        Message.objects.filter(id=ids[3]).update(status="sending", lease_until=T0 + timedelta(minutes=5))
        Message.objects.filter(id=ids[4]).update(status="claimed", lease_until=T0 + timedelta(minutes=5))
        rows = claim(now=T0, size=10)
    assert [r["id"] for r in rows] == [ids[5]]
    claimed = Message.objects.get(id=ids[5])
    # Claimed, not tried: no attempt counted yet, and the claim names its worker.
    assert (claimed.status, claimed.attempts) == ("claimed", 0)
    assert claimed.lease_until == T0 + timedelta(seconds=900)
    host, pid, _random = claimed.claimed_by.split(":")
    assert pid == str(os.getpid()) and rows[0]["claimed_by"] == claimed.claimed_by


def test_a_claim_that_is_never_tried_goes_back_to_the_queue_when_its_lease_ends(queue):
    with time_machine.travel(T0, tick=False):
        ids = queue(3)
        claim(now=T0, size=10)  # a worker claims all three … and dies before trying any
        assert deliver_due()["claimed"] == 0  # nobody else may take them meanwhile
    with time_machine.travel(T0 + timedelta(seconds=899), tick=False):
        assert release_claims() == 0
        assert deliver_due()["claimed"] == 0
    with time_machine.travel(T0 + timedelta(seconds=901), tick=False):
        counts = deliver_due()
    assert counts == {"claimed": 3, "sent": 3, "retried": 0, "failed": 0, "expired": 0, "released": 3}
    assert sorted(int(m.extra_headers["X-Maestra-Message"]) for m in mail.outbox) == ids
    # One provider call each: the dead worker's claim was not an attempt.
    assert set(Message.objects.values_list("status", "attempts")) == {("sent", 1)}


def test_a_row_past_its_lease_inside_the_provider_call_fails_with_unknown_outcome(queue):
    with time_machine.travel(T0, tick=False):
        stuck, fresh = queue(2)
        # A worker was inside the provider call for `stuck` when it died.
        Message.objects.filter(id=stuck).update(
            status="sending", lease_until=T0 + timedelta(seconds=900), attempts=1, claimed_by="dead:1:x"
        )
        Message.objects.filter(id=fresh).update(
            status="sending", lease_until=T0 + timedelta(hours=1), attempts=1, claimed_by="alive:2:y"
        )
    with time_machine.travel(T0 + timedelta(seconds=899), tick=False):
        assert expire_leases() == 0
    with time_machine.travel(T0 + timedelta(seconds=901), tick=False):
        counts = deliver_due()
    assert counts == {"claimed": 0, "sent": 0, "retried": 0, "failed": 0, "expired": 1}
    row = Message.objects.get(id=stuck)
    assert row.status == "failed"
    assert row.reason.startswith("unknown_outcome")
    assert Message.objects.get(id=fresh).status == "sending"  # still within its lease
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        deliver_all_due()
    assert mail.outbox == []
    assert Message.objects.get(id=stuck).status == "failed"


class CountingBackend(Backend):
    """Notes, at each provider call, the status of every row in the database."""

    seen: list[dict[int, str]] = []

    def send(self, message):
        CountingBackend.seen.append(dict(Message.objects.values_list("id", "status")))
        return SendResult(outcome=Outcome.SENT, provider_id=f"p{message.id}")


def test_only_the_row_inside_the_provider_call_is_sending(queue, settings):
    use_backend(settings, f"{__name__}.CountingBackend")
    settings.MAESTRA_DELIVERY_CHUNK = 4
    CountingBackend.seen = []
    ids = queue(4)
    assert deliver_due()["sent"] == 4
    # At the n-th call: the rows before it are already recorded, the n-th is
    # `sending`, the rest of the chunk is claimed and untried.
    assert CountingBackend.seen == [
        {i: ("sent" if k < n else "sending" if k == n else "claimed") for k, i in enumerate(ids)}
        for n in range(4)
    ]


class DyingBackend(Backend):
    """The worker is told to stop (KeyboardInterrupt) during its second call."""

    calls = 0

    def send(self, message):
        DyingBackend.calls += 1
        if DyingBackend.calls == 2:
            raise KeyboardInterrupt
        return SendResult(outcome=Outcome.SENT, provider_id=f"p{message.id}")


def test_a_worker_stopped_mid_chunk_gives_back_what_it_did_not_try(queue, settings):
    use_backend(settings, f"{__name__}.DyingBackend")
    DyingBackend.calls = 0
    first, second, third, fourth = queue(4)
    with pytest.raises(KeyboardInterrupt):
        deliver_due()
    statuses = dict(Message.objects.values_list("id", "status"))
    # Recorded, in flight (its outcome is unknown until the lease ends), and
    # back in the queue at once for the next worker.
    assert statuses == {first: "sent", second: "sending", third: "queued", fourth: "queued"}
    assert Message.objects.get(id=third).claimed_by == ""


class ExpiringClaimBackend(Backend):
    """While the first row is being sent, the worker's claim runs out: a
    sweep gives the rest back to the queue and another worker claims them."""

    calls: list[int] = []

    def send(self, message):
        ExpiringClaimBackend.calls.append(message.id)
        if len(ExpiringClaimBackend.calls) == 1:
            Message.objects.filter(status="claimed").update(lease_until=T0 - timedelta(seconds=1))
            release_claims(now=T0)
            claim(now=T0, size=10)  # the other worker
        return SendResult(outcome=Outcome.SENT, provider_id=f"p{message.id}")


def test_a_worker_whose_claim_ran_out_does_not_send_what_another_one_holds(queue, settings):
    use_backend(settings, f"{__name__}.ExpiringClaimBackend")
    ExpiringClaimBackend.calls = []
    with time_machine.travel(T0, tick=False):
        first, *rest = queue(3)
        counts = deliver_due(limit=3)
    assert ExpiringClaimBackend.calls == [first]
    assert counts["sent"] == 1
    other = set(Message.objects.filter(id__in=rest).values_list("status", "claimed_by"))
    assert len(other) == 1 and next(iter(other))[0] == "claimed"  # the other worker's, untouched


class IdempotentEmailBackend(DjangoEmailBackend):
    """A provider that de-duplicates by Message-ID / Idempotency-Key."""

    resends_unknown_outcome = True


def test_a_backend_whose_provider_honours_idempotency_keys_resends_unknown_outcomes(queue, settings):
    use_backend(settings, f"{__name__}.IdempotentEmailBackend")
    settings.MAESTRA_MAX_RETRIES = 1
    with time_machine.travel(T0, tick=False):
        again, exhausted, sms = queue(2) + queue(channel="sms", start=2)
        for message_id, attempts in ((again, 1), (exhausted, 2), (sms, 1)):
            Message.objects.filter(id=message_id).update(
                status="sending",
                lease_until=T0 - timedelta(seconds=1),
                attempts=attempts,
                claimed_by="dead:1:x",
            )
        assert deliver_due()["expired"] == 3
    rows = {m.id: m for m in Message.objects.all()}
    # Queued again and sent with the same id, which the provider de-duplicates …
    assert (rows[again].status, rows[again].attempts) == ("sent", 2)
    assert [m.extra_headers["Message-ID"] for m in mail.outbox] == [f"<maestra-{again}@localhost>"]
    # … but not past the retries, and not on a channel whose backend did not opt in.
    assert (rows[exhausted].status, rows[sms].status) == ("failed", "failed")
    assert rows[exhausted].reason.startswith("unknown_outcome: ") and "not re-sent" in rows[exhausted].reason
    assert rows[sms].reason.startswith("unknown_outcome: ") and "not re-sent" in rows[sms].reason


def test_a_backend_exception_is_an_unknown_outcome_never_retried(queue, settings):
    use_backend(settings, f"{__name__}.RaisingBackend")
    [message_id] = queue()
    assert deliver_due()["failed"] == 1
    row = Message.objects.get(id=message_id)
    assert (row.status, row.reason) == ("failed", "unknown_outcome: RuntimeError: backend bug")


def test_a_late_outcome_overrides_unknown_outcome(queue, settings):
    use_backend(settings, f"{__name__}.ExpiringBackend")
    with time_machine.travel(T0, tick=False):
        [message_id] = queue()
        deliver_due()
    row = Message.objects.get(id=message_id)
    assert (row.status, row.provider_id, row.reason) == ("sent", "late", "")


def test_a_misconfigured_backend_is_retried(queue, settings):
    use_backend(settings, "nowhere.Backend")
    [message_id] = queue()
    assert deliver_due()["retried"] == 1
    row = Message.objects.get(id=message_id)
    assert row.status == "queued"
    assert row.reason.startswith("backend_misconfigured: cannot import nowhere.Backend")


def test_a_retry_after_is_capped_at_a_day(queue, settings):
    use_backend(settings, f"{__name__}.SlowRetryBackend")
    with time_machine.travel(T0, tick=False):
        [message_id] = queue()
        deliver_due()
    assert Message.objects.get(id=message_id).next_attempt_at == T0 + timedelta(days=1)


def test_the_limit_and_chunks(queue, settings):
    settings.MAESTRA_DELIVERY_CHUNK = 2
    queue(5)
    assert deliver_due(limit=3)["sent"] == 3
    assert Message.objects.filter(status="queued").count() == 2


def test_deliver_all_due_loops_until_nothing_is_due(queue):
    queue(7)
    assert deliver_all_due(limit=3) == {"claimed": 7, "sent": 7, "retried": 0, "failed": 0, "expired": 0}
    assert len(mail.outbox) == 7
    assert deliver_task()["claimed"] == 0


def test_drain_sweeps_vanished_sends_then_delivers_everything_due(queue, settings):
    settings.MAESTRA_DELIVERY_CHUNK = 2
    with time_machine.travel(T0, tick=False):
        stale, *due = queue(5)
    Message.objects.filter(id=stale).update(
        status="sending", lease_until=T0, attempts=1, claimed_by="dead:1:x"
    )
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        assert drain() == {"claimed": 4, "sent": 4, "retried": 0, "failed": 0, "expired": 1}
    assert Message.objects.get(id=stale).reason.startswith("unknown_outcome")
    assert set(Message.objects.filter(id__in=due).values_list("status", flat=True)) == {"sent"}


@pytest.mark.parametrize("path", ["channels.tasks.deliver_task", "channels.delivery.deliver_task"])
def test_the_delivery_task_and_its_old_path_drain_the_outbox(queue, path):
    # django-q2 finds a task by its dotted path (pydoc.locate): Schedules and
    # queued tasks written before the task moved name the old one.
    queue(3)
    assert pydoc.locate(path)() == {"claimed": 3, "sent": 3, "retried": 0, "failed": 0, "expired": 0}
    assert len(mail.outbox) == 3


def test_a_test_row_that_is_queued_by_mistake_is_never_sent(queue):
    [message_id] = queue()
    Message.objects.filter(id=message_id).update(is_test=True)
    deliver_due()
    assert mail.outbox == []
    assert Message.objects.get(id=message_id).reason == "test_mode"


def test_the_console_backend_prints_sms(queue, capsys):
    [message_id] = queue(channel="sms")
    assert deliver_due()["sent"] == 1
    out = capsys.readouterr().out
    assert f'--- maestra sms message {message_id} to "+491512345678"' in out
    assert "text: Code P0" in out
    assert Message.objects.get(id=message_id).provider_id == f"console-{message_id}"


def test_the_command_prints_counts(queue):
    queue(2)
    out = io.StringIO()
    call_command("deliver_messages", stdout=out)
    assert (
        out.getvalue().strip()
        == "claimed=2 sent=2 retried=0 failed=0 expired=0 released=0 deferred=0 not_sent=0"
    )


def test_the_command_refuses_a_bad_limit():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--limit"):
        call_command("deliver_messages", "--limit", "0")
