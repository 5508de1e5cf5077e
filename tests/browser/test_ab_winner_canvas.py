"""The A/B winner on the canvas (SPEC §13): the A/B node's side form writes
the `winner` setting (no JSON to type), and a live flow's statistics show
the recorded winner with its p-value and counts."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from flows.models import ABWinner, Flow
from tests.browser.kit import flow_document, flow_node, link, new_flow, node, open_flow
from tests.flows.engine_kit import launch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VARIANTS = [{"name": "A", "percent": 50}, {"name": "B", "percent": 50}]


def visit_then_ab(**winner) -> tuple[list[dict], list[dict]]:
    """Nodes and edges: a visit starts, then A/B node "ab" (with `winner` if given)."""
    ab = flow_node("ab", "ab_test", variants=VARIANTS, **winner)
    return [flow_node("start", "event", event_type="visit"), ab], [link("start", "ab")]


def test_the_side_form_writes_the_winner_setting(page, live_server, superuser):
    flow = new_flow("Winner form", *visit_then_ab())
    open_flow(page, flow)
    node(page, "ab").click()
    form = page.locator(".fc-form")
    form.locator('[data-field="winner"] select').select_option("goal")
    form.locator('[data-field="winner.min_per_variant"] input').fill("250")
    form.locator('[data-field="winner.confidence"] select').select_option("0.99")
    form.locator('[data-field="winner.auto"] input').check()
    expect(page.locator(".fc-status")).to_have_text(re.compile("^Saved draft"))
    draft = Flow.objects.get(pk=flow.pk).draft
    config = {node["key"]: node["config"] for node in draft.document["nodes"]}["ab"]
    assert config == {
        "variants": VARIANTS,
        "winner": {"metric": "goal", "min_per_variant": 250, "confidence": 0.99, "auto": True},
    }
    assert draft.errors == []
    # A value the validator refuses shows under its field.
    form.locator('[data-field="winner.min_per_variant"] input').fill("3")
    expect(form.locator('[data-field="winner.min_per_variant"] .nf-error')).to_contain_text(
        "Customers per variant first: enter a whole number from 10"
    )
    # Switched off again: the setting is null.
    form.locator('[data-field="winner.metric"] select').select_option("")
    expect(form.locator('[data-field="winner.auto"]')).to_have_count(0)
    page.wait_for_timeout(1500)
    draft = Flow.objects.get(pk=flow.pk).draft
    assert {node["key"]: node["config"] for node in draft.document["nodes"]}["ab"]["winner"] is None
    assert page.problems == []


def test_the_canvas_statistics_show_the_winner(page, live_server, marketer):
    flow = launch(flow_document("Winner shown", *visit_then_ab(winner={"metric": "click", "auto": True})))
    # What the engine recorded: per variant, entered, converted, the rate and the p-value.
    fields = ("variant", "control", "entered", "converted", "rate", "p_value")
    counts = [
        dict(zip(fields, row))
        for row in [("A", False, 140, 14, 0.1, 0.0123), ("B", False, 150, 30, 0.2, None)]
    ]
    decision = {"variant": "B", "metric": "click", "confidence": 0.95, "p_value": 0.0123, "counts": counts}
    ABWinner.objects.create(
        flow=flow, node_key="ab", version_id=flow.live_version_id, decided_at=timezone.now(), **decision
    )
    open_flow(page, flow, username="mia")
    node(page, "ab").click()
    expect(page.locator(".fc-ab-winner")).to_contain_text("B won on email clicks · p = 0.0123")
    rows = page.locator(".fc-ab-winner-counts tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(2)).to_have_class("fc-ab-winner-row")
    expect(rows.nth(2)).to_contain_text("20.0 %")
    assert page.problems == []
