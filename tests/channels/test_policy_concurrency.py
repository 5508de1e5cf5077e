"""Quiet hours and the cross-flow frequency cap hold with two flows and two
delivery workers on PostgreSQL: every claim transaction takes its customers'
advisory locks before counting, so the workers never let N+1 through."""

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail

import channels.policy
from channels.models import Message, Template
from channels.outbox import queue_messages
from customers.models import Customer, Subscription
from tests.channels.conftest import send_request, use_backend
from tests.channels.delivery_workers import SENT_BY, SLOW_LOCMEM, run_two_workers

CAP = 3
CUSTOMERS = 8
PER_CUSTOMER = 30  # 15 from each of two flows
BERLIN = ZoneInfo("Europe/Berlin")
EVENING = datetime(2026, 5, 4, 22, 0, tzinfo=BERLIN)  # 22:00 Berlin, 16:00 New York
MORNING = datetime(2026, 5, 5, 8, 0, tzinfo=BERLIN)
NEW_YORK_MORNING = datetime(2026, 5, 5, 8, 0, tzinfo=ZoneInfo("America/New_York"))


def sent_per_customer() -> Counter[int]:
    return Counter(Message.objects.filter(status="sent").values_list("customer_id", flat=True))


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_quiet_hours_and_the_cap_hold_with_two_flows_and_two_workers(settings, monkeypatch):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    use_backend(settings, SLOW_LOCMEM)
    settings.MAESTRA_DELIVERY_CHUNK = 3
    settings.MAESTRA_QUIET_HOURS = "21:00-08:00"
    settings.MAESTRA_FREQUENCY_CAPS = f"email={CAP}/P1D"
    SENT_BY.clear()
    mail.outbox = []

    # Widen the race: a claim that has counted waits a little before it
    # commits. Without the customer locks the other worker would count the
    # same messages meanwhile and both would send.
    real_caps = channels.policy._caps

    def slow_caps(*args, **kwargs):
        real_caps(*args, **kwargs)
        time.sleep(0.005)

    monkeypatch.setattr(channels.policy, "_caps", slow_caps)

    for slug in ("flow_a_promo", "flow_b_promo"):
        Template.objects.create(
            slug=slug, name=slug, channel="email", purpose="marketing", subject="S", text="Hi"
        )
    Template.objects.create(
        slug="receipt", name="receipt", channel="email", purpose="service", subject="R", text="R"
    )
    # Half the customers are in Berlin (quiet at 22:00), half in New York (16:00).
    customers = Customer.objects.bulk_create(
        Customer(
            external_id=f"p{i}",
            email=f"p{i}@example.com",
            timezone="Europe/Berlin" if i % 2 else "America/New_York",
        )
        for i in range(CUSTOMERS)
    )
    Subscription.objects.bulk_create(
        Subscription(customer=customer, channel="email", status="subscribed") for customer in customers
    )
    berlin = {c.id for c in customers if c.timezone == "Europe/Berlin"}
    new_york = {c.id for c in customers if c.id not in berlin}

    def queue_all(run_base: int) -> None:
        # One customer's messages after another, flows alternating: the two
        # workers' chunks hold the same customer at the same time.
        requests = [
            send_request(
                customer.id,
                "flow_a_promo" if n % 2 else "flow_b_promo",
                run_id=run_base + n * CUSTOMERS + index,
                node_key="mail",
                flow_id=1 if n % 2 else 2,
                expires_at=EVENING + timedelta(days=1),
            )
            for index, customer in enumerate(customers)
            for n in range(PER_CUSTOMER)
        ]
        # A service message per customer: exempt from both.
        requests += [
            send_request(
                customer.id, "receipt", run_id=run_base + 10_000 + index, node_key="receipt", flow_id=3
            )
            for index, customer in enumerate(customers)
        ]
        results = queue_messages(requests=requests)
        assert Counter(r.status for r in results.values()) == {"queued": len(requests)}

    with time_machine.travel(EVENING.astimezone(UTC), tick=False):
        queue_all(100_000)
        evening = run_two_workers(limit=50)

    # Berlin is asleep: all its marketing waits; New York gets exactly CAP.
    assert min(SENT_BY.values()) > 0 and len(SENT_BY) == 2, SENT_BY
    per_customer = sent_per_customer()
    marketing_sent = Counter(
        Message.objects.filter(status="sent", marketing=True).values_list("customer_id", flat=True)
    )
    assert {cid: marketing_sent[cid] for cid in new_york} == dict.fromkeys(new_york, CAP)
    assert {cid: marketing_sent[cid] for cid in berlin} == dict.fromkeys(berlin, 0)
    assert all(per_customer[cid] == marketing_sent[cid] + 1 for cid in berlin | new_york)  # + the receipt
    # Both flows were capped together, not each on its own.
    assert Message.objects.filter(status="sent", marketing=True).values("flow_id").distinct().count() == 2
    deferred = Message.objects.filter(status="queued", customer_id__in=berlin)
    assert deferred.count() == len(berlin) * PER_CUSTOMER
    assert set(deferred.values_list("next_attempt_at", flat=True)) == {MORNING.astimezone(UTC)}
    assert set(deferred.values_list("attempts", flat=True)) == {0}
    refused = Message.objects.filter(status="not_sent", customer_id__in=new_york)
    assert refused.count() == len(new_york) * (PER_CUSTOMER - CAP)
    assert set(refused.values_list("reason", flat=True)) == {f"frequency_cap: {CAP} email per P1D reached"}
    handled = sum(c["claimed"] + c.get("deferred", 0) + c.get("not_sent", 0) for c in evening.values())
    assert handled == Message.objects.count()  # every row handled once: claimed, deferred or refused
    # Nothing went out twice.
    message_ids = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(message_ids) == len(set(message_ids)) == Message.objects.filter(status="sent").count()

    # 08:00 in Berlin (02:00 in New York): Berlin's customers get CAP each,
    # New York's new messages wait for 08:00 there.
    with time_machine.travel(MORNING.astimezone(UTC), tick=False):
        queue_all(200_000)
        run_two_workers(limit=50)
    marketing_sent = Counter(
        Message.objects.filter(status="sent", marketing=True).values_list("customer_id", flat=True)
    )
    assert dict(marketing_sent) == dict.fromkeys(berlin | new_york, CAP)
    waiting = Message.objects.filter(status="queued")
    assert set(waiting.values_list("customer_id", flat=True)) == new_york
    assert waiting.count() == len(new_york) * PER_CUSTOMER

    # 08:00 in New York: its window (since 16:00 yesterday there) is still
    # full, so everything that waited is refused.
    with time_machine.travel(NEW_YORK_MORNING.astimezone(UTC), tick=False):
        run_two_workers(limit=50)
    marketing_sent = Counter(
        Message.objects.filter(status="sent", marketing=True).values_list("customer_id", flat=True)
    )
    assert dict(marketing_sent) == dict.fromkeys(berlin | new_york, CAP)
    assert Message.objects.filter(status__in=["queued", "sending"]).count() == 0
    assert Message.objects.filter(status="sent", marketing=False).count() == 2 * CUSTOMERS
    message_ids = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(message_ids) == len(set(message_ids)) == Message.objects.filter(status="sent").count()
