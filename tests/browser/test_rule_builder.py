"""The rule builder (customers/static/customers/rule-builder.js) wherever rules
appear, driven like a marketer would, at 1,366×768 and 1,920×1,080: a
condition with AND / OR / NOT and an event-history leaf built without typing
JSON, an event start's filter, a segment rule, and the audience page's count.
Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import expect

from customers.models import Customer, Event, Segment
from customers.rules import validate_rule
from tests.browser import kit
from tests.browser.kit import draft_config, node, open_flow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Visible controls inside the builders without an accessible name.
UNLABELLED = """() => [...document.querySelectorAll('.rb input, .rb select, .rb textarea, .rb button')]
  .filter((el) => el.getClientRects().length > 0)
  .filter((el) => !((el.labels && [...el.labels].some((l) => l.textContent.trim()))
    || (el.getAttribute('aria-label') || '').trim() || (el.tagName === 'BUTTON' && el.textContent.trim())))
  .map((el) => el.outerHTML.slice(0, 160))"""


@pytest.fixture
def shop(transactional_db):
    """Customers with custom fields and orders, so the catalogue has names to offer
    (the live server shares this process's cache: an earlier test's catalogue goes)."""
    cache.clear()
    now = timezone.now()
    ann = Customer.objects.create(
        external_id="ann", email="ann@example.com", fields={"tier": "gold", "vip": True}
    )
    bob = Customer.objects.create(
        external_id="bob", email="bob@example.com", fields={"tier": "silver", "vip": False}
    )
    Customer.objects.create(external_id="cid", email="cid@example.com", fields={"tier": "gold"})
    # (customer, type, days ago, payload)
    history = [
        (ann, "order_created", 3, {"total": 150}),
        (ann, "order_created", 9, {"total": 120}),
        (bob, "order_created", 2, {"total": 20}),
        (bob, "page_view", 1, {"url": "/"}),
    ]
    Event.objects.bulk_create(
        Event(customer=who, type=kind, occurred_at=now - timedelta(days=days), payload=payload)
        for who, kind, days, payload in history
    )
    return ann, bob


def _pick(scope, label: str, value: str, *, index: int = 0) -> None:
    scope.get_by_label(label, exact=True).nth(index).select_option(value)


def test_a_condition_with_and_or_not_and_event_history_is_built_without_json(
    sized, live_server, superuser, shop, shoot
):
    page = sized
    start = kit.flow_node("start", "event", event_type="order_created")
    check = kit.flow_node("check", "condition", rule={"field": "points", "op": "gt", "value": 1})
    flow = kit.new_flow("Rules", [start, check], [kit.link("start", "check")])
    open_flow(page, flow)
    node(page, "check").click()
    builder = page.locator(".fc-form .rb")
    root = builder.locator("fieldset.rb-group").first
    # The catalogue arrived: the custom fields of the data are offered.
    expect(builder.locator("select.rb-field option[value='customer.fields.tier']")).to_have_count(1)

    # OR at the top.
    root.locator("select.rb-comb").first.select_option("any")
    # A NOT group: tier is gold and vip is true.
    root.locator(".rb-adds").last.get_by_role("button", name="Add group").click()
    group = root.locator("fieldset.rb-group").first
    group.locator("select.rb-field").first.select_option("customer.fields.tier")
    group.locator("select.rb-op").first.select_option("eq")
    group.locator("input.rb-value").first.fill("gold")
    group.get_by_role("button", name="Add condition").click()
    group.locator("select.rb-field").nth(1).select_option("customer.fields.vip")
    group.locator("select.rb-value").nth(0).select_option("true")
    group.get_by_label("Negate (NOT)").check()
    # Has done order_created at least 2 times in the last 30 days, where total > 100.
    root.locator(".rb-adds").last.get_by_role("button", name="Add event condition").click()
    event = root.locator(".rb-event-row").first
    event.get_by_label("Has done").fill("order_created")
    event.get_by_label("Has done").press("Tab")
    event = root.locator(".rb-event-row").first
    event.locator("select.rb-event-op").select_option("count_gte")
    event.get_by_label("Times").fill("2")
    event.get_by_role("button", name="Add a where").click()
    where = event.locator(".rb-where fieldset.rb-group")
    where.locator("select.rb-field").select_option("event.total")
    where.locator("select.rb-op").select_option("gt")
    where.locator("input.rb-value").fill("100")
    expect(page.locator(".fc-status")).to_have_text(re.compile("^Saved draft"))
    shoot(page, "condition", full_page=False)

    expected = {
        "any": [
            {"field": "points", "op": "gt", "value": 1},
            {
                "not": {
                    "all": [
                        {"field": "customer.fields.tier", "op": "eq", "value": "gold"},
                        {"field": "customer.fields.vip", "op": "eq", "value": True},
                    ]
                }
            },
            {
                "event": "order_created",
                "where": {"field": "event.total", "op": "gt", "value": 100},
                "within": "P30D",
                "op": "count_gte",
                "value": 2,
            },
        ]
    }
    page.wait_for_function("() => !document.querySelector('.fc-status').textContent.startsWith('Unsaved')")
    assert draft_config(flow, "check") == {"rule": expected}
    assert validate_rule(expected) == []
    flow.refresh_from_db()
    assert [e for e in flow.draft.errors if e["node"] == "check" and e["field"].startswith("rule")] == []
    # Reopened, the builder shows the saved rule again (no JSON needed).
    page.reload()
    node(page, "check").click()
    expect(page.locator(".fc-form .rb .rb-event-row input.rb-event")).to_have_value("order_created")
    expect(page.locator(".fc-form .rb fieldset.rb-negated")).to_have_count(1)
    assert page.evaluate(UNLABELLED) == []
    assert page.problems == []


def test_an_event_start_filter_and_the_json_view(sized, live_server, superuser, shop, shoot):
    page = sized
    flow = kit.new_flow("Rules", [kit.flow_node("start", "event", event_type="order_created")])
    open_flow(page, flow)
    node(page, "start").click()
    form = page.locator(".fc-form")
    # The event type box suggests the event types received.
    expect(form.locator('[data-field="event_type"] input')).to_have_attribute("list", "rb-event-types")
    expect(page.locator("#rb-event-types option[value='page_view']")).to_have_count(1)
    form.get_by_role("button", name="Add a filter").click()
    form.get_by_role("button", name="Add condition").click()
    form.locator("select.rb-field").select_option("event.total")
    form.locator("select.rb-op").select_option("gte")
    form.locator("input.rb-value").fill("50")
    page.wait_for_function("() => document.querySelector('.fc-status').textContent.startsWith('Saved draft')")
    page.wait_for_timeout(300)
    assert draft_config(flow, "start")["filter"] == {"field": "event.total", "op": "gte", "value": 50}
    # Advanced: the same rule as JSON, editable; back in the builder it is shown again.
    form.get_by_role("button", name="Advanced: edit as JSON").click()
    area = form.locator("textarea.rb-json")
    expect(area).to_have_value(re.compile('"event.total"'))
    area.fill('{"field": "customer.email", "op": "contains", "value": "@example.com"}')
    form.get_by_role("button", name="Back to the builder").click()
    expect(form.locator("select.rb-field")).to_have_value("customer.email")
    page.wait_for_function("() => document.querySelector('.fc-status').textContent.startsWith('Saved draft')")
    page.wait_for_timeout(300)
    assert draft_config(flow, "start")["filter"] == {
        "field": "customer.email",
        "op": "contains",
        "value": "@example.com",
    }
    shoot(page, "filter", full_page=False)
    assert page.problems == []


def test_a_segment_rule_through_the_builder(sized, live_server, marketer, shop, shoot):
    page = sized
    builder = kit.new_rule_segment(page, "Big buyers")
    builder.get_by_role("button", name="Add event condition").click()
    row = builder.locator(".rb-event-row")
    row.get_by_label("Has done").fill("order_created")
    row.get_by_label("Has done").press("Tab")
    row = builder.locator(".rb-event-row")
    row.locator("select.rb-event-op").select_option("count_gte")
    row.get_by_label("Times").fill("2")
    row.get_by_label("Amount").fill("14")
    # From the keyboard: Enter on "Add condition" adds one and focus stays on the button.
    builder.get_by_role("button", name="Add condition").last.focus()
    page.keyboard.press("Enter")
    expect(builder.locator(".rb-leaf")).to_have_count(1)
    assert page.evaluate("() => document.activeElement.textContent") == "Add condition"
    # The catalogue arrived: the custom fields of the data are offered.
    expect(builder.locator("select.rb-field option[value='customer.fields.tier']")).to_have_count(1)
    builder.locator("select.rb-field").last.select_option("customer.email")
    builder.locator("select.rb-op").last.select_option("exists")
    shoot(page, "segment")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist .success")).to_have_count(1)
    segment = Segment.objects.get(slug="big-buyers")
    assert segment.rule == {
        "all": [
            {"event": "order_created", "where": None, "within": "P14D", "op": "count_gte", "value": 2},
            {"field": "customer.email", "op": "exists"},
        ]
    }
    # Reopened: the builder shows it; the JSON stays available behind "Advanced".
    page.goto(f"/admin/customers/segment/{segment.pk}/change/")
    expect(page.locator(".rb .rb-event-row input.rb-event")).to_have_value("order_created")
    page.get_by_role("button", name="Advanced: edit as JSON").click()
    expect(page.locator("#id_rule")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    assert page.problems == []


def test_the_audience_page_counts_a_rule_built_in_the_builder(sized, live_server, superuser, shop, shoot):
    page = sized
    audience = {"segment": None, "rule": {"field": "customer.email", "op": "exists"}}
    daily = {"every": "day", "at": "10:00"}
    start = kit.flow_node("start", "schedule", recurrence=daily, timezone="flow", audience=audience)
    open_flow(page, kit.new_flow("Rules", [start]), view="audience")
    builder = page.locator(".rb")
    builder.get_by_role("button", name="Add event condition").click()
    row = builder.locator(".rb-event-row")
    row.get_by_label("Has done").fill("order_created")
    row.get_by_label("Has done").press("Tab")
    builder.locator(".rb-event-row select.rb-event-op").select_option("count_gte")
    builder.locator(".rb-event-row").get_by_label("Times").fill("2")
    builder.get_by_role("button", name="Add condition").last.click()
    expect(builder.locator("select.rb-field option[value='customer.fields.tier']")).to_have_count(1)
    # No trigger event on an audience: no event.* fields offered.
    expect(builder.locator("select.rb-field option[value^='event.']")).to_have_count(0)
    builder.locator("select.rb-field").last.select_option("customer.fields.tier")
    builder.locator("input.rb-value").last.fill("gold")
    page.get_by_role("button", name="Count").click()
    # ann: gold with two orders in the last 30 days (cid is gold without orders).
    expect(page.locator("#audience-matching")).to_have_text("1")
    shoot(page, "audience")
    expect(page.locator(".rb .rb-event-row input.rb-event")).to_have_value("order_created")
    assert page.problems == []
