"""The delivery worker: claims, leases, outcomes, loops (locmem email, console and
test backends; the HTTP and SMTP backends have their own files)."""

import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command

from channels.backends import Backend, Outcome, SendResult
from channels.delivery import claim, deliver_all_due, deliver_due, deliver_task, expire_leases
from channels.models import Message
from channels.outbox import SendRequest, queue_messages

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
                SendRequest(
                    customer_id=customer.id,
                    template_slug="t" if channel == "email" else "sms",
                    channel=channel,
                    run_id=1000 + i,
                    node_key=channel,
                    step_index=0,
                    pass_no=1,
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
        ids = queue(5)
        Message.objects.filter(id=ids[0]).update(next_attempt_at=T0 + timedelta(minutes=1))
        Message.objects.filter(id=ids[1]).update(status="not_sent")
        Message.objects.filter(id=ids[2]).update(status="failed")
        Message.objects.filter(id=ids[3]).update(status="sending", lease_until=T0 + timedelta(minutes=5))
        rows = claim(now=T0, size=10)
    assert [r["id"] for r in rows] == [ids[4]]
    claimed = Message.objects.get(id=ids[4])
    assert (claimed.status, claimed.attempts) == ("sending", 1)
    assert claimed.lease_until == T0 + timedelta(seconds=900)


def test_a_row_past_its_lease_fails_with_unknown_outcome_and_is_never_sent(queue):
    with time_machine.travel(T0, tick=False):
        stuck, fresh = queue(2)
        claim(now=T0, size=10)  # a worker claims both … and dies
    with time_machine.travel(T0 + timedelta(seconds=899), tick=False):
        assert expire_leases() == 0
    with time_machine.travel(T0 + timedelta(seconds=901), tick=False):
        Message.objects.filter(id=fresh).update(lease_until=T0 + timedelta(hours=1))  # still held
        counts = deliver_due()
    assert counts == {"claimed": 0, "sent": 0, "retried": 0, "failed": 0, "expired": 1}
    row = Message.objects.get(id=stuck)
    assert row.status == "failed"
    assert row.reason.startswith("unknown_outcome")
    assert Message.objects.get(id=fresh).status == "sending"
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        deliver_all_due()
    assert mail.outbox == []
    assert Message.objects.get(id=stuck).status == "failed"


def test_a_backend_exception_is_an_unknown_outcome_never_retried(queue, settings):
    settings.MAESTRA_CHANNEL_BACKENDS = {
        **settings.MAESTRA_CHANNEL_BACKENDS,
        "email": f"{__name__}.RaisingBackend",
    }
    [message_id] = queue()
    assert deliver_due()["failed"] == 1
    row = Message.objects.get(id=message_id)
    assert (row.status, row.reason) == ("failed", "unknown_outcome: RuntimeError: backend bug")


def test_a_late_outcome_overrides_unknown_outcome(queue, settings):
    settings.MAESTRA_CHANNEL_BACKENDS = {
        **settings.MAESTRA_CHANNEL_BACKENDS,
        "email": f"{__name__}.ExpiringBackend",
    }
    with time_machine.travel(T0, tick=False):
        [message_id] = queue()
        deliver_due()
    row = Message.objects.get(id=message_id)
    assert (row.status, row.provider_id, row.reason) == ("sent", "late", "")


def test_a_misconfigured_backend_is_retried(queue, settings):
    settings.MAESTRA_CHANNEL_BACKENDS = {**settings.MAESTRA_CHANNEL_BACKENDS, "email": "nowhere.Backend"}
    [message_id] = queue()
    assert deliver_due()["retried"] == 1
    row = Message.objects.get(id=message_id)
    assert row.status == "queued"
    assert row.reason.startswith("backend_misconfigured: cannot import nowhere.Backend")


def test_a_retry_after_is_capped_at_a_day(queue, settings):
    settings.MAESTRA_CHANNEL_BACKENDS = {
        **settings.MAESTRA_CHANNEL_BACKENDS,
        "email": f"{__name__}.SlowRetryBackend",
    }
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
    assert out.getvalue().strip() == "claimed=2 sent=2 retried=0 failed=0 expired=0 deferred=0 not_sent=0"


def test_the_command_refuses_a_bad_limit():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--limit"):
        call_command("deliver_messages", "--limit", "0")
