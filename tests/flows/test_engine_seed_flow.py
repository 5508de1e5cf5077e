"""The help page's example, end to end through the engine: registration →
confirmation email → a day later, a reminder only if still unconfirmed."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from channels.models import Message
from customers.models import Customer
from customers.services import set_subscriptions
from flows.engine.tick import tick
from flows.models import NodePass, Run
from tests.flows import engine_kit as kit

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def live_seed_flow(templates, spec_document, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return kit.launch(spec_document)


def register(external_id: str) -> Customer:
    """A customer who has registered but not yet confirmed the subscription."""
    subscriptions = {"email": "requires_confirmation"}
    customer_id = kit.customer(external_id, first_name=external_id.title(), subscriptions=subscriptions)
    return Customer.objects.get(pk=customer_id)


@pytest.mark.django_db
def test_it_sends_the_confirmation_and_then_the_reminder(live_seed_flow):
    with time_machine.travel(START, tick=False):
        ann = register("ann")
        counts = tick()
    assert counts["events.runs_started"] == 1
    assert [m.subject for m in mail.outbox] == ["Confirm your subscription"]
    assert mail.outbox[0].to == ["ann@example.com"]
    run = Run.objects.get(customer=ann)
    assert run.status == Run.Status.WAITING
    assert run.node_key == "day"
    assert run.due_at == START + timedelta(days=1)

    with time_machine.travel(START + timedelta(hours=23), tick=False):
        tick()
    assert len(mail.outbox) == 1  # not yet

    with time_machine.travel(START + timedelta(days=1, minutes=1), tick=False):
        tick()
    assert [m.subject for m in mail.outbox] == ["Confirm your subscription", "Reminder your subscription"]
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED
    assert list(NodePass.objects.filter(run=run).order_by("pass_no").values_list("node_key", "port")) == [
        ("start", "next"),
        ("ask", "next"),
        ("day", "next"),
        ("still", "yes"),
        ("remind", "next"),
    ]
    assert Message.objects.filter(customer=ann, status=Message.Status.SENT).count() == 2


@pytest.mark.django_db
def test_it_sends_no_reminder_once_confirmed(live_seed_flow):
    with time_machine.travel(START, tick=False):
        bob = register("bob")
        tick()
    with time_machine.travel(START + timedelta(hours=3), tick=False):
        set_subscriptions(changes=[(bob.pk, "email", "subscribed")])
        tick()
    with time_machine.travel(START + timedelta(days=2), tick=False):
        tick()
    assert [m.subject for m in mail.outbox] == ["Confirm your subscription"]
    # The confirmation itself is a subscription_changed event that the start
    # filter refuses: recorded as a run stopped at the door.
    refused = Run.objects.get(customer=bob, stop_reason="filter_failed")
    assert refused.status == Run.Status.STOPPED
    run = Run.objects.exclude(pk=refused.pk).get(customer=bob)
    assert run.status == Run.Status.COMPLETED
    assert NodePass.objects.get(run=run, node_key="still").port == "no"
