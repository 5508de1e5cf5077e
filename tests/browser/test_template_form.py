"""The template form in a real browser (issue #14, item 7), at 1,366×768 and
1,920×1,080: the preview beside the form (the saved template rendered for a
sample customer, then for a chosen one; unsaved edits said so, brought in by
"Save and continue editing") and the syntax checked on save — a template
with a broken `{% if %}` is refused with the problem under its field and
nothing saved.

Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from channels.models import Template
from customers.models import Customer
from tests.browser.kit import FIRST_NAME, confirm_template, log_in
from tests.browser.test_editor_accessibility import unnamed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def template(transactional_db):
    Customer.objects.create(external_id="c-7", email="cleo@example.com", first_name="Cleo")
    return confirm_template(subject=f"Please confirm, {FIRST_NAME}")


def test_the_template_form_has_its_preview_beside_it(sized, live_server, superuser, template, shoot):
    page = sized
    log_in(page, username="boss")
    page.goto(f"/admin/channels/template/{template.pk}/change/")
    side = page.locator("#tpl-side-preview")
    fields = page.locator(".tpl-fields")

    # Beside the form, not under it: to its right, starting at its top.
    expect(side).to_be_visible()
    side_box, fields_box = side.bounding_box(), fields.bounding_box()
    assert side_box["x"] >= fields_box["x"] + fields_box["width"]
    assert abs(side_box["y"] - fields_box["y"]) <= 2
    assert side_box["x"] + side_box["width"] <= page.viewport_size["width"]

    # It opens with the sample customer's rendering: subject, text and the HTML.
    expect(side.get_by_role("heading", name="Preview")).to_be_visible()
    expect(side.locator("pre.preview-subject")).to_have_text(re.compile(r"^Please confirm, \S+"))
    expect(side.locator(".tpl-side-note")).to_have_text("The saved template, rendered for a sample customer.")
    frame = side.frame_locator("iframe.template-preview-html")
    expect(frame.locator("p")).to_contain_text("please confirm")
    shoot(page, "template-preview-beside", full_page=False)

    # A chosen customer, from the keyboard: Enter previews, the form is not sent.
    side.get_by_label("Customer (id, email or phone; empty: a sample customer)").fill("c-7")
    side.get_by_label("Customer (id, email or phone; empty: a sample customer)").press("Enter")
    expect(side.locator("pre.preview-subject")).to_have_text("Please confirm, Cleo")
    expect(frame.locator("b")).to_have_text("Cleo")
    expect(side.get_by_role("link", name="Open the full preview")).to_have_attribute(
        "href", re.compile(r"/preview/\?customer=c-7$")
    )
    assert page.url.endswith(f"/admin/channels/template/{template.pk}/change/")

    # An edit: the side says it is not shown yet; Save and continue brings it in.
    page.fill("#id_subject", "Confirm now, {{ customer.first_name }}")
    expect(side.locator(".tpl-side-note")).to_contain_text("Unsaved changes are not shown")
    with page.expect_navigation():
        page.locator("input[name=_continue]").click()
    expect(page.locator(".messagelist .success")).to_have_count(1)
    expect(side.locator("pre.preview-subject")).to_have_text(re.compile(r"^Confirm now, \S+"))
    assert unnamed(page) == []
    assert page.problems == []


def test_a_broken_tag_is_refused_on_save_under_its_field(sized, live_server, superuser, template, shoot):
    page = sized
    log_in(page, username="boss")
    page.goto(f"/admin/channels/template/{template.pk}/change/")
    expect(page.locator("#tpl-side-preview pre.preview-subject")).to_be_visible()
    page.fill("#id_text", "Hello {% if customer.first_name %}{{ customer.first_name }}")
    page.locator("input[name=_continue]").click()
    expect(page.locator(".errornote")).to_be_visible()
    error = page.locator(".field-text .errorlist")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile("endif|closed|tag", re.IGNORECASE))
    shoot(page, "template-syntax-error", full_page=False)
    assert Template.objects.get(pk=template.pk).text == "Hello {{ customer.first_name }}"
    # The preview still shows the saved template.
    expect(page.locator("#tpl-side-preview pre.preview-text")).to_have_text(re.compile(r"^Hello \S+"))
    assert page.problems == []
