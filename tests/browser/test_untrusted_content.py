"""Untrusted content in a real browser (SPEC §12): a customer's first name
set through the API to a script does not run in the admin's template preview,
nor does an HTML part that tries to break out of its frame; the canvas, its
confirmations and the API docs work under the Content-Security-Policy."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from flows.models import Flow
from maestra.api.models import ApiKey
from tests.browser import kit
from tests.browser.kit import log_in, node, open_flow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS = "<img src=x onerror=alert(1)>"
BREAKOUT = '"></iframe><script>alert(2)</script><iframe srcdoc="'


def script_refusals(problems: list[str]) -> list[str]:
    """The console errors of scripts the browser refused to run (the frame's
    policy or its sandbox)."""
    return [p for p in problems if "Refused to execute" in p or "Blocked script execution" in p]


def test_a_script_in_customer_data_does_not_run_in_the_preview(page, live_server, superuser):
    key = ApiKey.objects.create_key(name="crm")[1]
    stored = page.request.put(
        f"{live_server.url}/api/v1/customers/eve",
        data={"email": "eve@example.com", "first_name": XSS, "fields": {"bio": BREAKOUT}},
        headers={"Authorization": f"Api-Key {key}"},
    )
    assert stored.status in (200, 201), stored.text()
    # The marketer marked the name safe: it is rendered as HTML, in the frame.
    html = "<p>{{ customer.first_name|safe }}</p>{{ customer.fields.bio|safe }}"
    text = "{{ customer.first_name }} {{ customer.fields.bio }}"
    template = kit.email_template("hello", "Hi {{ customer.first_name }}", text, html=html)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, username="boss")

    response = page.goto(f"/admin/channels/template/{template.pk}/preview/?customer=eve")

    # Text parts show the payload as text.
    expect(page.locator("pre.preview-subject")).to_have_text(f"Hi {XSS}")
    expect(page.locator("pre.preview-text")).to_have_text(f"{XSS} {BREAKOUT}")
    assert page.locator("img[src=x]").count() == 0
    # The HTML part is rendered inside the sandboxed frame, and only there.
    frame_element = page.locator("iframe.template-preview-html")
    assert frame_element.get_attribute("sandbox") == ""
    frame = frame_element.content_frame
    expect(frame.locator("p img")).to_have_count(1)
    expect(page.locator("iframe")).to_have_count(1)  # nothing broke out of the frame into the page
    page.wait_for_timeout(300)  # the image's error event has long fired by now
    assert dialogs == []
    assert script_refusals(page.problems), page.problems
    assert "script-src 'self'" in response.headers["content-security-policy"]


@pytest.fixture
def live_flow_with_draft(transactional_db):
    kit.email_template("news", "S", "Hi")
    start = kit.flow_node("start", "event", event_type="signup")
    mail = kit.flow_node("mail", "steps", relevance="P1D", steps=[kit.send_email("news")])
    return kit.live_with_draft(kit.flow_document("Newsletter", [start, mail], [kit.link("start", "mail")]))


def test_the_canvas_and_its_confirmations_work_under_the_policy(page, superuser, live_flow_with_draft):
    flow = live_flow_with_draft

    response = open_flow(page, flow)

    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(node(page, "mail")).to_be_visible()
    node(page, "mail").click()
    expect(page.locator(".fc-form h3")).to_have_text("Steps node")
    expect(page.locator('.fc-form [data-field="key"] input')).to_have_value("mail")
    # "Discard draft" asks first, in a dialog of a static script (no inline handler).
    discard = page.locator(".fc-actions .fc-danger")
    dialog = page.get_by_role("dialog")
    discard.click()
    expect(dialog).to_contain_text("Discard the draft? The live version stays as it is.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert Flow.objects.get(pk=flow.pk).draft is not None

    discard.click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Discard draft").click()
    expect(page.locator(".messagelist")).to_contain_text("The draft was deleted.")
    assert Flow.objects.get(pk=flow.pk).draft is None
    assert page.problems == []


def test_the_api_docs_work_under_the_policy(page):
    response = page.goto("/api/docs/")

    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Maestra flows API")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    assert page.problems == []
