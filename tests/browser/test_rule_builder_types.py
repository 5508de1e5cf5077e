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
from flows import lifecycle
from tests.browser.conftest import log_in, node
from tests.browser.test_flow_editor import VIEWPORTS, draft, saved

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=list(VIEWPORTS))
def sized(request, page):
    width, height = VIEWPORTS[request.param]
    page.set_viewport_size({"width": width, "height": height})
    return page


@pytest.fixture
def data(transactional_db):
    """Custom fields of three types and an event type with a number and a text
    payload key (the live server shares this process's cache: cleared)."""
    cache.clear()
    ann = Customer.objects.create(
        external_id="ann", email="ann@example.com", fields={"tier": "gold", "birthday": "1990-05-01"}
    )
    Customer.objects.create(
        external_id="bob", email="bob@example.com", fields={"tier": "silver", "birthday": "2001-11-30"}
    )
    Event.objects.create(
        customer=ann,
        type="order_created",
        occurred_at=timezone.now() - timedelta(days=1),
        payload={"total": 150, "coupon": "SPRING"},
    )


def ops(select) -> list[str]:
    return select.evaluate("(s) => [...s.options].map((o) => o.value)")


def test_a_date_field_gets_a_date_picker_and_date_operators(sized, live_server, marketer, data, shoot):
    page = sized
    log_in(page, username="mia")
    page.goto("/admin/customers/segment/add/")
    page.fill("#id_name", "Born before 2000")
    page.select_option("#id_kind", "rule")
    builder = page.locator(".rb")
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
    flow = lifecycle.create_flow(
        document={
            "format": "maestra.flow/1",
            "name": "Typed",
            "nodes": [
                {"key": "start", "kind": "event", "config": {"event_type": "order_created"}},
                {"key": "big", "kind": "condition", "config": {"rule": {"all": []}}},
            ],
            "edges": [{"from": "start", "to": "big"}],
        }
    )
    log_in(page, username="boss")
    page.goto(f"/admin/flows/flow/{flow.pk}/change/")
    node(page, "big").click()
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
    rule = next(n for n in draft(flow)["nodes"] if n["key"] == "big")["config"]["rule"]
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
    flow = lifecycle.create_flow(
        document={
            "format": "maestra.flow/1",
            "name": "Branches",
            "nodes": [
                {"key": "start", "kind": "event", "config": {"event_type": "order_created"}},
                {"key": "tiers", "kind": "condition", "config": {"rule": {"all": []}}},
            ],
            "edges": [{"from": "start", "to": "tiers"}],
        }
    )
    log_in(page, username="boss")
    page.goto(f"/admin/flows/flow/{flow.pk}/change/")
    node(page, "tiers").click()
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
    config = next(n for n in draft(flow)["nodes"] if n["key"] == "tiers")["config"]
    assert config["attribute"] == "customer.fields.tier"
    assert config["branches"][0]["values"] == ["gold", "platinum"]
    shoot(page, "branches-attribute", full_page=False)
    assert page.problems == []


def test_a_dynamic_waits_date_field_suggests_the_date_paths_of_the_data(sized, live_server, superuser, data):
    """The wait's "Date field" box offers the paths whose values are dates (a
    custom field holding dates, the customer's creation date), not text ones."""
    page = sized
    flow = lifecycle.create_flow(
        document={
            "format": "maestra.flow/1",
            "name": "Birthday",
            "nodes": [{"key": "until", "kind": "wait", "config": {"mode": "fixed", "duration": "P1D"}}],
            "edges": [],
        }
    )
    log_in(page, username="boss")
    page.goto(f"/admin/flows/flow/{flow.pk}/change/")
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
    config = next(n for n in draft(flow)["nodes"] if n["key"] == "until")["config"]
    assert config["field"] == "customer.fields.birthday"
    assert page.problems == []
