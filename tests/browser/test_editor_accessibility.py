"""Every control of the editor's pages has an accessible name (issue #14,
item 9: "labels on every control"), at 1,366×768 and 1,920×1,080.

test_flow_editor.py checks the canvas section (#flow-canvas) while nodes are
added; this walks the whole DOM of each page a marketer meets around the
editor — the editor of a draft with its "Details, JSON and versions" form
opened, every side-panel tab, the launch review and the archive dialog, an
old version on the canvas, the audience page, the dashboard, the flow list,
monitoring, the customer activity search and the template form with its
preview — and lists each visible input, select,
textarea and button (and each element with a role of a control) that has
neither a <label>, aria-label, aria-labelledby naming text, a button's
text nor a title. A control that loses its name fails the test with its HTML.

Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from channels.models import Template
from flows.models import Flow
from tests.browser.kit import live_with_draft, node, open_flow, open_tab, spec_document

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every visible control in the page (or in `scope`, a CSS selector) without an
# accessible name, as the start of its HTML. Inputs of type hidden, controls
# not rendered (display: none, a closed <details>, [hidden]) and
# visibility: hidden ones are skipped: a screen reader does not meet them.
UNNAMED_IN_PAGE = """(scope) => {
  const root = scope ? document.querySelector(scope) : document;
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  // Text content, with the alt text of images in it (the changelist's search label is an icon).
  const text = (el) => (el ? (el.textContent + ' ' + [...el.querySelectorAll('img[alt]')].map((i) => i.alt).join(' '))
    .replace(/\\s+/g, ' ').trim() : '');
  const named = (el) => {
    if ((el.getAttribute('aria-label') || '').trim()) return true;
    const by = el.getAttribute('aria-labelledby');
    if (by && by.split(/\\s+/).some((id) => text(document.getElementById(id)))) return true;
    if (el.labels && [...el.labels].some((l) => text(l))) return true;
    if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type) && (el.value || '').trim()) return true;
    if (el.tagName === 'INPUT' && el.type === 'image' && (el.alt || '').trim()) return true;
    const role = el.getAttribute('role');
    if ((['BUTTON', 'SUMMARY'].includes(el.tagName) || ['button', 'tab', 'menuitem', 'option', 'link'].includes(role)) && text(el)) return true;
    return Boolean((el.title || '').trim());
  };
  const controls = 'input, select, textarea, button, summary, '
    + '[role=button], [role=tab], [role=checkbox], [role=radio], [role=combobox], [role=textbox], [role=slider], [role=switch], [role=menuitem]';
  return [...root.querySelectorAll(controls)]
    .filter((el) => el.type !== 'hidden' && shown(el) && !named(el))
    .map((el) => el.outerHTML.slice(0, 200));
}"""


def unnamed(page, scope: str | None = None) -> list[str]:
    return page.evaluate(UNNAMED_IN_PAGE, scope)


def live_flow_with_draft() -> Flow:
    """The SPEC §11 example live, its draft with "ask" retitled."""
    document = spec_document()
    document["nodes"][1]["title"] = "Ask nicely"
    return live_with_draft(spec_document(), document)


def test_every_control_of_the_editor_page_has_a_name(
    sized, live_server, superuser, previewable_templates, shoot
):
    page = sized
    open_flow(page, live_flow_with_draft())
    expect(page.locator(".drawflow-node")).to_have_count(5)
    assert unnamed(page) == []

    # Each node's form (steps: with its template preview opened), each tab.
    for key in ("start", "ask", "day", "still", "remind"):
        node(page, key).click()
        for box in page.locator(".fc-form details").all():
            box.locator("summary").click()
        assert unnamed(page) == [], key
    for tab in ("Settings", "Checks", "Statistics", "Node"):
        open_tab(page, tab)
        assert unnamed(page) == [], tab

    # The More menu and the "Details, JSON and versions" form below the editor.
    page.locator("details.fe-more summary").click()
    assert unnamed(page) == []
    page.locator("details.fe-more summary").click()
    for box in page.locator("#flow-details details").all():
        if box.is_visible() and box.get_attribute("open") is None:
            box.locator("summary").first.click()
    page.locator("#flow-details").scroll_into_view_if_needed()
    assert unnamed(page) == []
    shoot(page, "details-form")

    # The launch review (dialog) and the archive confirmation.
    page.get_by_role("button", name="Launch draft…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator(".lr-facts")).to_be_visible()
    assert unnamed(page, "dialog") == []
    shoot(page, "launch-review", full_page=False)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Archive…").click()
    expect(dialog).to_be_visible()
    assert unnamed(page, "dialog") == []
    page.keyboard.press("Escape")
    assert page.problems == []


def test_every_control_around_the_editor_has_a_name(
    sized, live_server, superuser, previewable_templates, shoot
):
    page = sized
    flow = live_flow_with_draft()

    # An old version, read-only on the canvas.
    open_flow(page, flow, view="versions/1")
    expect(page.locator(".drawflow-node")).to_have_count(5)
    node(page, "ask").click()
    assert unnamed(page) == []

    # The audience page with its rule builder.
    page.goto(f"/admin/flows/flow/{flow.pk}/audience/")
    assert unnamed(page) == []

    # The dashboard and the flow list.
    page.goto(reverse("admin:flows_dashboard"))
    expect(page.get_by_role("heading", name="Flows by status")).to_be_visible()
    assert unnamed(page) == []
    page.goto("/admin/flows/flow/")
    assert unnamed(page) == []

    # Monitoring and the customer activity search.
    page.goto(reverse("admin:flows_monitoring"))
    assert unnamed(page) == []
    page.goto(reverse("admin:flows_customer_activity_search"))
    assert unnamed(page) == []

    # The template form with its preview beside it.
    template = Template.objects.get(slug="confirm")
    page.goto(f"/admin/channels/template/{template.pk}/change/")
    assert unnamed(page) == []
    shoot(page, "template-form", full_page=False)
    assert page.problems == []
