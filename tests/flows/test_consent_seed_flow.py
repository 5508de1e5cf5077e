"""The SPEC §11 seed flow with a real confirmation link, through a real SMTP
server: registration → confirmation email → the link confirms → no reminder;
without the click, the reminder a day later."""

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.test import Client

from customers.models import Customer, Subscription
from flows.engine.tick import tick
from tests.flows import engine_kit as kit

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
BASE = "https://links.shop.example"


@pytest.fixture
def live_seed_flow(templates, spec_document, settings, smtp_server):
    settings.MAESTRA_PUBLIC_BASE_URL = BASE
    templates["confirm"].text = "Hello {{ customer.first_name }}, confirm here: {{ links.confirm }}"
    templates["confirm"].save()
    kit.launch(spec_document)
    return smtp_server


def register(external_id: str) -> Customer:
    """A customer signs up; the seed flow starts on their subscription_changed."""
    subscriptions = {"email": "requires_confirmation"}
    return Customer.objects.get(
        pk=kit.customer(external_id, first_name=external_id.title(), subscriptions=subscriptions)
    )


def received(smtp) -> list[tuple[str, str, str]]:
    out = []
    for envelope in smtp.envelopes:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        out.append((envelope.rcpt_tos[0], message["Subject"], message.get_content()))
    return out


@pytest.mark.django_db
def test_the_confirmation_link_confirms_and_no_reminder_follows(live_seed_flow):
    smtp = live_seed_flow
    with time_machine.travel(START, tick=False):
        ann = register("ann")
        tick()
    [(to, subject, body)] = received(smtp)
    assert (to, subject) == ("ann@example.com", "Confirm your subscription")
    link = re.search(r"(https://\S+)", body).group(1)
    assert link.startswith(f"{BASE}/p/confirm/")

    client = Client(enforce_csrf_checks=True)
    with time_machine.travel(START + timedelta(hours=2), tick=False):
        page = client.get(urlsplit(link).path)
        assert page.status_code == 200
        # GET alone (a mail scanner) confirms nothing.
        assert Subscription.objects.get(customer=ann).status == "requires_confirmation"
        token = page.cookies["csrftoken"].value
        response = client.post(urlsplit(link).path, {"csrfmiddlewaretoken": token})
        assert response.status_code == 200
        tick()  # the subscription_changed event is matched (filter: requires_confirmation → no run)
    assert Subscription.objects.get(customer=ann).status == "subscribed"

    with time_machine.travel(START + timedelta(days=1, minutes=1), tick=False):
        tick()
    assert [subject for _to, subject, _body in received(smtp)] == ["Confirm your subscription"]


@pytest.mark.django_db
def test_without_the_click_the_reminder_comes_after_a_day(live_seed_flow):
    smtp = live_seed_flow
    with time_machine.travel(START, tick=False):
        register("bob")
        tick()
    with time_machine.travel(START + timedelta(hours=23), tick=False):
        tick()
    assert len(received(smtp)) == 1
    with time_machine.travel(START + timedelta(days=1, minutes=1), tick=False):
        tick()
    assert [subject for _to, subject, _body in received(smtp)] == [
        "Confirm your subscription",
        "Reminder your subscription",
    ]
