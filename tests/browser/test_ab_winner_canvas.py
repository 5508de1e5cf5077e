"""The A/B winner on the canvas (SPEC §13): the A/B node's side form writes
the `winner` setting (no JSON to type), and a live flow's statistics show
the recorded winner with its p-value and counts."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from flows import lifecycle
from flows.models import ABWinner, Flow
from tests.browser.kit import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VARIANTS = [{"name": "A", "percent": 50}, {"name": "B", "percent": 50}]


def test_the_side_form_writes_the_winner_setting(page, live_server, superuser):
    flow = lifecycle.create_flow(
        document={
            "format": "maestra.flow/1",
            "name": "Winner form",
            "nodes": [
                {"key": "start", "kind": "event", "config": {"event_type": "visit"}},
                {"key": "ab", "kind": "ab_test", "config": {"variants": VARIANTS}},
            ],
            "edges": [{"from": "start", "to": "ab"}],
        }
    )
    log_in(page, username="boss")
    page.goto(f"/admin/flows/flow/{flow.pk}/change/")
    page.locator('.drawflow-node[data-key="ab"]').click()
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
    flow = lifecycle.create_flow(
        document={
            "format": "maestra.flow/1",
            "name": "Winner shown",
            "nodes": [
                {"key": "start", "kind": "event", "config": {"event_type": "visit"}},
                {
                    "key": "ab",
                    "kind": "ab_test",
                    "config": {"variants": VARIANTS, "winner": {"metric": "click", "auto": True}},
                },
            ],
            "edges": [{"from": "start", "to": "ab"}],
        }
    )
    lifecycle.launch_flow(flow=flow, enqueue=False)
    flow = lifecycle.finish_launch(flow_id=flow.pk)
    ABWinner.objects.create(
        flow=flow,
        node_key="ab",
        version_id=flow.live_version_id,
        variant="B",
        metric="click",
        confidence=0.95,
        p_value=0.0123,
        counts=[
            {
                "variant": "A",
                "control": False,
                "entered": 140,
                "converted": 14,
                "rate": 0.1,
                "p_value": 0.0123,
            },
            {"variant": "B", "control": False, "entered": 150, "converted": 30, "rate": 0.2, "p_value": None},
        ],
        decided_at=timezone.now(),
    )
    log_in(page, username="mia")
    page.goto(f"/admin/flows/flow/{flow.pk}/change/")
    page.locator('.drawflow-node[data-key="ab"]').click()
    expect(page.locator(".fc-ab-winner")).to_contain_text("B won on email clicks · p = 0.0123")
    rows = page.locator(".fc-ab-winner-counts tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(2)).to_have_class("fc-ab-winner-row")
    expect(rows.nth(2)).to_contain_text("20.0 %")
    assert page.problems == []
