"""Plain language, template preview and send-a-test from the steps node,
and the marketer's home, in a real browser (issue #14, items 5, 7 and 8)
at 1,366×768 and 1,920×1,080: the Checks list in words with the codes as
tooltips, no stray "null" in the limitation form, the chosen template
rendered in the side panel and a test sent from there over real SMTP on
loopback, the dashboard with its sparklines and the Marketer's menu
without the engine's tables.

Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from channels.models import Message
from customers.models import Customer, Event
from flows import lifecycle
from flows.models import Run
from tests.browser.kit import flow_node, log_in, node, open_flow, open_tab, spec_document
from tests.browser.test_flow_editor import UNLABELLED
from tests.channels.conftest import smtp_server  # noqa: F401 (a fixture: real SMTP on loopback)
from tests.flows.engine_kit import launch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The engine's own tables, kept out of the Marketer's menu.
ENGINE_TABLES = (
    "Ab assignments|Edges|Launch records|Limitation counters|Limitation grants|Node passes|Node stats"
)


def test_checks_speak_plain_language_with_codes_as_tooltips(
    sized, live_server, superuser, previewable_templates, shoot
):
    page = sized
    document = spec_document()
    document["nodes"][1]["config"]["steps"][0]["template"] = "gone"
    document["nodes"][2]["config"]["duration"] = ""
    document["nodes"].append(flow_node("cap", "limitation", max=10, period=None))
    open_flow(page, lifecycle.create_flow(document=document))

    open_tab(page, "Checks")
    errors = page.locator(".fc-error-list li")
    template_error = errors.filter(has_text="Step 1: the template “gone” does not exist; choose another one")
    expect(template_error).to_have_count(1)
    expect(template_error).to_have_attribute("title", re.compile(r"steps\.0\.template: no template 'gone'"))
    expect(errors.filter(has_text="Wait for: enter a length of time")).to_have_count(1)
    expect(errors.filter(has_text="Nothing leads to this node")).to_have_count(1)
    for code in ("steps.0.template", "ISO 8601", "not reachable from the start node"):
        expect(page.locator(".fc-error-list")).not_to_contain_text(code)
    shoot(page, "checks-plain-language", full_page=False)

    # The node's own form: the same words under the field.
    template_error.get_by_role("button").click()
    expect(page.locator(".fc-form .nf-has-error .nf-error").first).to_contain_text(
        "Step 1: the template “gone”"
    )

    # The limitation form: no stray "null" when the period is "all time".
    node(page, "cap").focus()
    form = page.locator(".fc-form")
    expect(form.get_by_label("Per")).to_have_value("")
    assert "null" not in form.inner_text()
    assert page.evaluate(UNLABELLED) == []
    assert page.problems == []


def test_the_steps_node_previews_its_template_and_sends_a_test(
    sized,
    live_server,
    superuser,
    previewable_templates,
    smtp_server,  # noqa: F811 (the fixture imported above)
    shoot,
):
    page = sized
    Customer.objects.create(external_id="c-7", email="cleo@example.com", first_name="Cleo")
    open_flow(page, lifecycle.create_flow(document=spec_document()))
    node(page, "ask").focus()
    box = page.locator(".fc-form details.tp-box").first
    box.locator("summary").click()

    # Preview for the sample customer, then for a real one.
    box.get_by_role("button", name="Show preview").click()
    frame = page.frame_locator(".tp-frame").first
    expect(frame.locator("p")).to_contain_text("please confirm")
    box.get_by_label("Customer (id, email or phone; empty: a sample customer)").fill("c-7")
    box.get_by_role("button", name="Show preview").click()
    expect(frame.locator("b")).to_have_text("Cleo")
    expect(box.get_by_role("link", name="Open the full preview")).to_have_attribute(
        "href", re.compile(r"preview/\?customer=c-7")
    )
    shoot(page, "steps-template-preview", full_page=False)

    # Send a test from the panel: the template admin's send-test page opens with the result.
    box.get_by_label("Send the test to (empty: the customer's own address)").fill("qa@example.com")
    send = box.get_by_role("button", name="Send a test")
    send.scroll_into_view_if_needed()
    with page.context.expect_page() as opened:
        send.click()
    result = opened.value
    result.wait_for_load_state()
    expect(result.locator("#content")).to_contain_text(re.compile(r"Message \d+: sent"))
    expect(result.get_by_label(re.compile("^Send to"))).to_have_value("qa@example.com")
    message = Message.objects.get(is_test=True)
    assert message.status == Message.Status.SENT
    assert smtp_server.envelopes[0].rcpt_tos == ["qa@example.com"]
    assert b"Cleo" in smtp_server.envelopes[0].content
    assert page.evaluate(UNLABELLED) == []
    assert page.problems == []


def test_the_marketers_home_dashboard_and_list(sized, live_server, marketer, previewable_templates, shoot):
    page = sized
    flow = launch(spec_document())
    lifecycle.create_flow(document={**spec_document(), "name": "Winback"})
    version = flow.live_version
    sent = {"template_slug": "confirm", "channel": "email", "status": Message.Status.SENT, "flow_id": flow.pk}
    for n in range(3):
        customer = Customer.objects.create(external_id=f"d{n}", email=f"d{n}@example.com")
        run = Run.objects.create(
            flow=flow, version=version, customer=customer, node_key="ask", clock=version.launched_at
        )
        Message.objects.create(customer=customer, run_id=run.pk, **sent)
        if n < 2:  # two of them ordered after entering: goal conversions
            Event.objects.create(customer=customer, type="order_created", occurred_at=timezone.now())

    log_in(page, username="mia")
    # The Marketer's menu: the dashboard, and none of the engine's tables.
    menu = page.locator("#content")
    expect(page.locator("#marketer-tools").get_by_role("link", name="Dashboard")).to_be_visible()
    for internal in ENGINE_TABLES.split("|"):
        expect(menu.get_by_role("link", name=internal, exact=True)).to_have_count(0)
    expect(page.locator("#flows-flow").get_by_role("link", name="Flows")).to_be_visible()
    shoot(page, "marketer-index", full_page=False)

    menu.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Flows by status")).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Subscription confirmation"))
    expect(row.locator("td.fd-num").nth(0)).to_contain_text("3")
    expect(row.locator("td.fd-num").nth(1)).to_contain_text("3")
    expect(row.locator("td.fd-num").nth(2)).to_contain_text("2")
    expect(
        row.get_by_role("img", name=re.compile(r"^conversions per day: 0, 0, 0, 0, 0, 0, 2$"))
    ).to_be_visible()
    expect(row.get_by_role("img", name=re.compile(r"^entered per day: 0, 0, 0, 0, 0, 0, 3$"))).to_be_visible()
    expect(page.locator("svg.fd-spark polyline")).to_have_count(6)
    shoot(page, "dashboard", full_page=False)

    page.get_by_role("link", name="Winback").click()
    expect(page.locator(".fe-name")).to_have_text("Winback")
    page.goto("/admin/flows/flow/")
    header = page.locator("#result_list thead")
    expect(header).to_contain_text("Entered (7 days)")
    expect(header).to_contain_text("Sent (7 days)")
    listed = page.get_by_role("row").filter(has_text="Subscription confirmation")
    expect(listed.locator("td.field-entered_7d")).to_have_text("3")
    expect(listed.locator("td.field-sent_7d")).to_have_text("3")
    shoot(page, "flow-list-figures", full_page=False)
    assert page.problems == []
