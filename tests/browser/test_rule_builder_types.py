"""The rule builder's typed inputs (issue #14, item 3: "operators by value
type, typed value inputs (date pickers for dates)"), at 1,366×768 and
1,920×1,080: a date custom field and the customer's creation date get a date
picker and date operators, a number payload key of an event gets number
operators and a number box, a text field gets text operators, and the rule
saved is typed (a number stays a number, a date an ISO day).

Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import expect

from customers.models import Customer, Event, Segment
from customers.rules import validate_rule
from flows.models import Flow
from tests.browser import kit
from tests.browser.kit import draft_config, node, open_flow, saved

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def data(transactional_db):
    """Custom fields of three types and an event type with a number and a text
    payload key (the live server shares this process's cache: cleared)."""
    cache.clear()
    for external_id, tier, birthday in [("ann", "gold", "1990-05-01"), ("bob", "silver", "2001-11-30")]:
        fields = {"tier": tier, "birthday": birthday}
        Customer.objects.create(external_id=external_id, email=f"{external_id}@example.com", fields=fields)
    ann = Customer.objects.get(external_id="ann")
    yesterday = timezone.now() - timedelta(days=1)
    payload = {"total": 150, "coupon": "SPRING"}
    Event.objects.create(customer=ann, type="order_created", occurred_at=yesterday, payload=payload)


def open_condition(page, name: str, key: str) -> Flow:
    """A flow `name` (an order_created start, then condition `key` with an
    empty rule) open in the editor, the condition's form shown."""
    start = kit.flow_node("start", "event", event_type="order_created")
    condition = kit.flow_node(key, "condition", rule={"all": []})
    flow = kit.new_flow(name, [start, condition], [kit.link("start", key)])
    open_flow(page, flow)
    node(page, key).click()
    return flow


def ops(select) -> list[str]:
    return select.evaluate("(s) => [...s.options].map((o) => o.value)")


def test_a_date_field_gets_a_date_picker_and_date_operators(sized, live_server, marketer, data, shoot):
    page = sized
    builder = kit.new_rule_segment(page, "Born before 2000")
    builder.get_by_role("button", name="Add condition").last.click()
    expect(builder.locator("select.rb-field option[value='customer.fields.birthday']")).to_have_count(1)

    # A text field: text operators, a text box.
    builder.locator("select.rb-field").select_option("customer.fields.tier")
    offered = ops(builder.locator("select.rb-op"))
    assert "contains" in offered and "before" not in offered and "gt" not in offered
    expect(builder.locator("input.rb-value")).to_have_attribute("type", "text")

    # A date field: date operators, a date picker.
    builder.locator("select.rb-field").select_option("customer.fields.birthday")
    offered = ops(builder.locator("select.rb-op"))
    assert {"before", "after", "within_last"} <= set(offered) and "contains" not in offered
    builder.locator("select.rb-op").select_option("before")
    picker = builder.locator("input.rb-value")
    expect(picker).to_have_attribute("type", "date")
    picker.fill("2000-01-01")
    # Within the last: an amount and a unit, not a typed duration.
    builder.get_by_role("button", name="Add condition").last.click()
    builder.locator("select.rb-field").nth(1).select_option("customer.created_at")
    expect(builder.locator("select.rb-op").nth(1)).to_have_value("before")
    expect(builder.locator("input.rb-value").nth(1)).to_have_attribute("type", "date")
    builder.locator("select.rb-op").nth(1).select_option("within_last")
    builder.locator("input.rb-amount").fill("6")
    builder.locator("select.rb-unit, .rb-leaf select").last.select_option("P{n}M")
    shoot(page, "date-picker")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist .success")).to_have_count(1)
    rule = Segment.objects.get(name="Born before 2000").rule
    assert rule == {
        "all": [
            {"field": "customer.fields.birthday", "op": "before", "value": "2000-01-01"},
            {"field": "customer.created_at", "op": "within_last", "value": "P6M"},
        ]
    }
    assert validate_rule(rule) == []
    assert page.problems == []


def test_an_events_payload_keys_come_with_their_types(sized, live_server, superuser, data, shoot):
    page = sized
    flow = open_condition(page, "Typed", "big")
    builder = page.locator(".fc-form .rb")
    builder.get_by_role("button", name="Add condition").last.click()
    # The event's payload keys are offered (the trigger event of the run).
    field = builder.locator("select.rb-field")
    expect(field.locator("option[value='event.total']")).to_have_count(1)
    expect(field.locator("option[value='event.coupon']")).to_have_count(1)
    field.select_option("event.coupon")
    assert "contains" in ops(builder.locator("select.rb-op"))
    field = builder.locator("select.rb-field")
    field.select_option("event.total")
    offered = ops(builder.locator("select.rb-op"))
    assert "gt" in offered and "contains" not in offered
    builder.locator("select.rb-op").select_option("gte")
    value = builder.locator("input.rb-value")
    expect(value).to_have_attribute("type", "number")
    with saved(page):
        value.fill("100")
    rule = draft_config(flow, "big")["rule"]
    assert rule == {"field": "event.total", "op": "gte", "value": 100}
    shoot(page, "payload-number", full_page=False)
    assert page.problems == []


def test_a_condition_on_branches_suggests_the_field_paths_of_the_data(
    sized, live_server, superuser, data, shoot
):
    """The branches' attribute box suggests the paths the catalogue knows (the
    custom field names in the data, event payload keys), not a bare
    "customer.fields." to complete by hand."""
    page = sized
    flow = open_condition(page, "Branches", "tiers")
    form = page.locator(".fc-form")
    with saved(page):
        form.get_by_label("Decide by").select_option("branches")
    attribute = form.get_by_label("Attribute")
    expect(attribute).to_have_attribute("list", "rb-field-paths")
    paths = page.locator("#rb-field-paths option")
    expect(page.locator("#rb-field-paths option[value='customer.fields.tier']")).to_have_count(1)
    expect(page.locator("#rb-field-paths option[value='customer.fields.birthday']")).to_have_count(1)
    expect(page.locator("#rb-field-paths option[value='event.total']")).to_have_count(1)
    expect(page.locator("#rb-field-paths option[value='customer.email']")).to_have_count(1)
    assert "customer.fields." not in paths.evaluate_all("(options) => options.map((o) => o.value)")
    with saved(page):
        attribute.fill("customer.fields.tier")
        attribute.blur()
    with saved(page):
        form.get_by_label("branch 1 values").fill("gold, platinum")
        form.get_by_label("branch 1 values").blur()
    config = draft_config(flow, "tiers")
    assert config["attribute"] == "customer.fields.tier"
    assert config["branches"][0]["values"] == ["gold", "platinum"]
    shoot(page, "branches-attribute", full_page=False)
    assert page.problems == []


def test_a_dynamic_waits_date_field_suggests_the_date_paths_of_the_data(sized, live_server, superuser, data):
    """The wait's "Date field" box offers the paths whose values are dates (a
    custom field holding dates, the customer's creation date), not text ones."""
    page = sized
    flow = kit.new_flow("Birthday", [kit.flow_node("until", "wait", mode="fixed", duration="P1D")])
    open_flow(page, flow)
    node(page, "until").click()
    form = page.locator(".fc-form")
    with saved(page):
        form.locator('[data-field="mode"] select').select_option("dynamic")
    box = form.locator('[data-field="field"] input')
    expect(box).to_have_attribute("list", "rb-date-paths")
    expect(page.locator("#rb-date-paths option[value='customer.fields.birthday']")).to_have_count(1)
    expect(page.locator("#rb-date-paths option[value='customer.created_at']")).to_have_count(1)
    expect(page.locator("#rb-date-paths option[value='customer.fields.tier']")).to_have_count(0)
    with saved(page):
        box.fill("customer.fields.birthday")
        box.blur()
    config = draft_config(flow, "until")
    assert config["field"] == "customer.fields.birthday"
    assert page.problems == []
