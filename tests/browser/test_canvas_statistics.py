"""Statistics in the browser: on a live flow's canvas, exits per port with %
of the start, limitation places, stop reasons on click, an A/B node's
variants with conversions, Wilson interval and revenue as a table and an SVG
chart; then the monitoring page and a template preview."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from channels.models import Message, Template
from customers.models import Customer, Event
from flows.engine.batch import hour_of
from flows.models import LimitationCounter, NodePass, NodeStat, Run
from flows.nodes.limitation import EPOCH
from tests.browser import kit
from tests.browser.kit import FIRST_NAME, flow_node, link, log_in, node
from tests.flows.engine_kit import launch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCUMENT = kit.flow_document(
    "Welcome A/B",
    [
        flow_node("start", "event", at=(40, 160), event_type="signup"),
        flow_node("split", "ab_test", at=(340, 160), variants=[{"name": v, "percent": 50} for v in "AB"]),
        flow_node("cap", "limitation", at=(640, 40), max=5, period=None),
        flow_node("mail", "steps", at=(640, 300), relevance="P1D", steps=[kit.send_email("welcome")]),
    ],
    [link("start", "split"), link("split", "cap", "A"), link("split", "mail", "B")],
)
# What the engine counted yesterday: (node, metric, count).
NODE_STATS = [
    ("start", "entered", 4),
    ("start", "exit:next", 4),
    ("split", "entered", 4),
    ("split", "exit:A", 2),
    ("split", "exit:B", 2),
    ("cap", "entered", 2),
    ("cap", "exit:within", 2),
    ("mail", "entered", 2),
    ("mail", "exit:next", 1),
    ("mail", "stop:template_error", 1),
]


@pytest.fixture
def live_ab_flow(transactional_db):
    """DOCUMENT live, with yesterday's statistics: four customers split two
    and two, one of A's ordered (42.00), one of B's stopped on a broken
    template (its failed message kept for monitoring)."""
    hello = f"Hello {FIRST_NAME}"
    welcome = kit.email_template("welcome", f"Welcome {FIRST_NAME}", hello, html=f"<h1>{hello}</h1>")
    flow = launch(DOCUMENT)
    yesterday = timezone.now() - timedelta(days=1)
    for key, metric, count in NODE_STATS:
        NodeStat.objects.create(flow=flow, node_key=key, metric=metric, count=count, hour=hour_of(yesterday))
    LimitationCounter.objects.create(flow=flow, node_key="cap", signature="all", window_start=EPOCH, used=2)
    customers = [
        Customer.objects.create(external_id=f"c{i}", email=f"c{i}@example.com", first_name=f"Cus{i}")
        for i in range(4)
    ]
    # Through the A/B node yesterday: two to A, two to B.
    split = {"version": flow.live_version, "node_key": "split", "kind": "ab_test", "pass_no": 2}
    for customer, variant in zip(customers, ["A", "A", "B", "B"]):
        run = run_at(flow, customer, "split", yesterday, status="completed", entered_at=yesterday)
        NodePass.objects.create(run=run, at=yesterday, exited_at=yesterday, port=variant, **split)
    order = {"type": "order_created", "occurred_at": yesterday + timedelta(hours=2), "payload": {"total": 42}}
    Event.objects.create(customer=customers[0], **order)
    stopped = {"status": "stopped", "ended_at": yesterday, "stop_reason": "template_error"}
    failed = run_at(flow, customers[2], "mail", yesterday, **stopped)
    mail = {"template": welcome, "template_slug": "welcome", "channel": "email", "node_key": "mail"}
    failure = {"status": "failed", "reason": "template_error: subject: broken tag", "created_at": yesterday}
    Message.objects.create(customer=customers[2], flow_id=flow.pk, run_id=failed.pk, **mail, **failure)
    return flow


def run_at(flow, customer, node_key: str, at, **state) -> Run:
    """A run of the live version of `flow` at `node_key`, its clock at `at`."""
    version = flow.live_version
    return Run.objects.create(
        flow=flow, version=version, customer=customer, node_key=node_key, clock=at, **state
    )


def test_the_canvas_shows_run_statistics_and_ab_results(
    page, live_server, marketer, live_ab_flow, shoot, timer
):
    log_in(page, username="mia")
    page.goto(f"/admin/flows/flow/{live_ab_flow.pk}/change/")
    # A live flow opens with the last 7 days' statistics.
    expect(node(page, "start").locator(".fc-stat-entered")).to_have_text("entered 4 · 100.0 %")
    expect(node(page, "split").locator(".output_1 .fc-port-count")).to_have_text("2 · 50.0 %")
    expect(node(page, "split").locator(".output_2 .fc-port-count")).to_have_text("2 · 50.0 %")
    expect(node(page, "cap").locator(".fc-stat-limitation")).to_have_text("used 2 / 5 · 3 left")
    expect(node(page, "mail").locator(".fc-stat-stops")).to_contain_text("stopped 1")
    expect(node(page, "mail").locator(".fc-stat-messages")).to_have_text("failed 1")
    timer.lap("open with statistics")

    node(page, "mail").click()
    # The reason in words, its code as the tooltip (flows/plain_language.py).
    expect(page.locator(".fc-stop-reasons")).to_contain_text("The template could not be filled in")
    expect(page.locator('.fc-stop-reasons td[title="template_error"]')).to_have_count(1)
    expect(page.locator(".fc-stop-reasons")).to_contain_text("25.0 %")

    node(page, "split").click()
    table = page.locator(".fc-ab")
    expect(table.locator("tr")).to_have_count(3)
    expect(table.locator("tr").nth(1)).to_contain_text("A")
    expect(table.locator("tr").nth(1)).to_contain_text("50.0 %")  # 1 of 2 converted
    expect(table.locator("tr").nth(1)).to_contain_text("42.00")
    expect(table.locator("tr").nth(2)).to_contain_text("0.0 %")
    expect(page.locator("svg.fc-ab-chart rect.fc-ab-bar")).to_have_count(2)
    expect(page.locator("svg.fc-ab-chart line.fc-ab-ci")).to_have_count(2)
    shoot(page, "1-ab-statistics")
    shoot(page, "1b-ab-side-panel", element=page.locator(".fc-side"))
    timer.lap("details")

    # Another period: nothing happened then.
    page.get_by_role("tab", name="Statistics").click()
    page.fill("[name=stats-from]", "2020-01-01")
    page.fill("[name=stats-to]", "2020-01-31")
    page.locator(".fc-stats-show").click()
    expect(node(page, "start").locator(".fc-stat-entered")).to_have_text("entered 0")
    page.locator(".fc-stats-hide").click()
    expect(node(page, "start").locator(".fc-stat-entered")).to_have_count(0)

    # Monitoring: the failed step with its error text.
    page.goto("/admin/flows/flow/monitoring/?show=steps")
    expect(page.locator(".monitoring-steps tbody tr")).to_have_count(1)
    expect(page.locator(".monitoring-steps")).to_contain_text("template_error: subject: broken tag")
    shoot(page, "2-monitoring-steps")
    page.goto("/admin/flows/flow/monitoring/")
    expect(page.locator(".monitoring-messages tbody tr")).to_have_count(1)
    shoot(page, "3-monitoring-messages")

    # Template preview for a chosen customer.
    template = Template.objects.get(slug="welcome")
    page.goto(f"/admin/channels/template/{template.pk}/change/")
    page.get_by_role("link", name="Preview", exact=True).click()
    page.fill("#preview-customer", "c1@example.com")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("pre.preview-subject")).to_have_text("Welcome Cus1")
    expect(page.frame_locator("iframe.template-preview-html").locator("h1")).to_have_text("Hello Cus1")
    shoot(page, "4-template-preview")
    timer.lap("monitoring and preview")
    assert page.problems == []
