"""Email engagement in a real browser: a flow sends a tracked email to a
real SMTP server on loopback; Chromium shows the HTML that arrived (its
open pixel loads from the live server) and follows a link through the
signed redirect; the canvas statistics then show the unique open and click
on the steps node."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from channels.models import Message, Template
from customers.models import Customer, Event, Subscription
from customers.services import store_events
from flows import lifecycle
from flows.engine.tick import tick
from tests.browser.kit import log_in
from tests.channels.conftest import smtp_server  # noqa: F401
from tests.flows.conftest import steps_document

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_opens_and_clicks_in_the_browser_reach_the_canvas_statistics(
    page,
    live_server,
    marketer,
    smtp_server,  # noqa: F811
    settings,
):
    settings.MAESTRA_PUBLIC_BASE_URL = live_server.url
    target = f"{live_server.url}/admin/login/?from=newsletter"
    Template.objects.create(
        slug="news",
        name="News",
        channel="email",
        purpose="marketing",
        subject="News for {{ customer.first_name }}",
        html=f'<html><body><h1>Hello {{{{ customer.first_name }}}}</h1><a href="{target}">Read more</a></body></html>',
    )
    flow = lifecycle.create_flow(
        document=steps_document([{"action": "send", "channel": "email", "template": "news"}])
    )
    lifecycle.launch_flow(flow=flow, enqueue=False)
    flow = lifecycle.finish_launch(flow_id=flow.pk)
    customer = Customer.objects.create(external_id="ann", email="ann@example.com", first_name="Ann")
    Subscription.objects.create(customer=customer, channel="email", status="subscribed")
    store_events(
        events=[
            {
                "external_id": "o-1",
                "customer_id": customer.pk,
                "type": "order_created",
                "occurred_at": timezone.now(),
                "payload": {},
            }
        ]
    )
    tick()
    [envelope] = smtp_server.envelopes
    html = (
        email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        .get_body(("html",))
        .get_content()
    )
    assert "/t/c/" in html and "/t/o/" in html

    # The email as a mail client shows it: the pixel loads from the live server.
    with page.expect_response(lambda response: "/t/o/" in response.url) as pixel:
        page.set_content(html)
    assert pixel.value.status == 200
    page.get_by_role("link", name="Read more").click()
    page.wait_for_url(target)
    row = Message.objects.get(template_slug="news")
    assert row.opened_at is not None and row.clicked_at is not None
    assert set(Event.objects.filter(customer=customer).values_list("type", flat=True)) >= {
        "email_opened",
        "email_clicked",
    }

    log_in(page, username="mia")
    page.goto(f"/admin/flows/flow/{flow.pk}/change/")
    act = page.locator('.drawflow-node[data-key="act"]')
    expect(act.locator(".fc-stat-email")).to_have_text("opened 1 · clicked 1 of 1 sent")
    act.click()
    table = page.locator(".fc-email")
    expect(table).to_contain_text("1 (100.0 %)")
    assert datetime.now(UTC) - row.sent_at < timedelta(minutes=5)
