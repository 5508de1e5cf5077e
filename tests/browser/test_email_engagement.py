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

from channels.models import Message
from customers.models import Customer, Event, Subscription
from flows.engine.tick import tick
from tests.browser.kit import FIRST_NAME, email_template, open_flow, send_email
from tests.channels.conftest import smtp_server  # noqa: F401
from tests.flows.conftest import steps_document
from tests.flows.engine_kit import launch, post_event

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
    html = f'<html><body><h1>Hello {FIRST_NAME}</h1><a href="{target}">Read more</a></body></html>'
    email_template("news", f"News for {FIRST_NAME}", "", purpose="marketing", html=html)
    flow = launch(steps_document([send_email("news")]))
    customer = Customer.objects.create(external_id="ann", email="ann@example.com", first_name="Ann")
    Subscription.objects.create(customer=customer, channel="email", status="subscribed")
    post_event(customer.pk, occurred_at=timezone.now())
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

    open_flow(page, flow, username="mia")
    act = page.locator('.drawflow-node[data-key="act"]')
    expect(act.locator(".fc-stat-email")).to_have_text("opened 1 · clicked 1 of 1 sent")
    act.click()
    table = page.locator(".fc-email")
    expect(table).to_contain_text("1 (100.0 %)")
    assert datetime.now(UTC) - row.sent_at < timedelta(minutes=5)
