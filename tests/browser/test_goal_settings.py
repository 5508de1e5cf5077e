"""The flow's goal and exit criteria in the settings panel, and the
wait_event node's side form (SPEC §13), in a real browser: each control
writes the maestra.flow/1 shapes into the autosaved draft, and the server's
errors come back beside their control."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from flows import lifecycle
from flows.models import Flow
from tests.browser.kit import draft, flow_document, flow_node, open_flow, open_tab, saved

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCUMENT = flow_document("Goals", [flow_node("start", "event", event_type="signed_up")])


def test_goal_and_exit_controls_write_the_document(page, live_server, superuser):
    flow = lifecycle.create_flow(document=DOCUMENT)
    open_flow(page, flow)
    open_tab(page, "Settings")
    panel = page.locator("#fe-panel-settings")

    with saved(page):
        panel.get_by_label("Count conversions").check()
    assert draft(flow)["goal"] == {
        "event_type": "order_created",
        "filter": None,
        "window": "P7D",
        "value_field": None,
    }
    goal = panel.locator(".fe-goal")
    with saved(page):
        goal.locator('[data-field="goal.window"] .nf-amount').fill("3")
    with saved(page):
        goal.get_by_label("Value of a conversion").fill("event.total")
    assert draft(flow)["goal"]["window"] == "P3D"
    assert draft(flow)["goal"]["value_field"] == "event.total"

    # A value field outside the event is refused beside its control.
    with saved(page):
        goal.get_by_label("Value of a conversion").fill("customer.email")
    expect(goal.locator('[data-field="goal.value_field"] .nf-error')).not_to_be_empty()
    with saved(page):
        goal.get_by_label("Value of a conversion").fill("event.total")
    expect(goal.locator('[data-field="goal.value_field"] .nf-error')).to_be_empty()

    with saved(page):
        panel.get_by_label("Take customers out").check()
    exit_box = panel.locator(".fe-exit")
    with saved(page):
        exit_box.get_by_label("Exit event").fill("unsubscribed")
    # The filter through the rule builder: a condition on the event's payload.
    exit_box.locator(".rb-add-filter").click()
    with saved(page):
        exit_box.locator(".rb-add").click()
    with saved(page):
        exit_box.locator(".rb-field").select_option("__other__")
        exit_box.locator(".rb-path").fill("event.reason")
        exit_box.locator(".rb-path").press("Tab")
    stored = draft(flow)
    assert stored["exit"]["event_type"] == "unsubscribed"
    assert stored["exit"]["filter"]["field"] == "event.reason"
    # The builder offers only the event's payload here: a customer path is refused beside it.
    with saved(page):
        exit_box.locator(".rb-path").fill("customer.email")
        exit_box.locator(".rb-path").press("Tab")
    expect(exit_box.locator('[data-field="exit.filter.field"] .nf-error').first).not_to_be_empty()

    with saved(page):
        panel.get_by_label("Count conversions").uncheck()
    assert draft(flow)["goal"] is None
    assert page.problems == []


def test_the_wait_event_form_writes_its_config(page, live_server, superuser):
    flow = lifecycle.create_flow(document=DOCUMENT)
    open_flow(page, flow)
    form = page.locator(".fc-form")
    page.locator('.fc-palette-item[data-kind="wait_event"]').click()
    expect(form.locator('[data-field="key"] input')).to_have_value("wait_event_1")
    expect(page.locator('.drawflow-node[data-key="wait_event_1"] .outputs .output')).to_have_count(2)
    with saved(page):
        form.locator('[data-field="event_type"] input').fill("email_clicked")
    with saved(page):
        form.locator('[data-field="timeout"] .nf-amount').fill("2")
    configs = {node["key"]: node["config"] for node in Flow.objects.get(pk=flow.pk).draft.document["nodes"]}
    assert configs["wait_event_1"] == {"event_type": "email_clicked", "filter": None, "timeout": "P2D"}
    assert page.problems == []
