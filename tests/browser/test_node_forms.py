"""The canvas's node forms and the server's node kinds agree: the exits the
script draws are the ports flows.nodes gives, and a new node's default
config has the shape the validator expects (only the fields a marketer must
choose are reported missing)."""

from __future__ import annotations

import pytest

from flows.nodes import REGISTRY
from flows.nodes.base import ValidationContext
from tests.browser.kit import log_in, new_flow, open_flow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PORT_CASES = [
    ("event", {"event_type": "x"}),
    ("schedule", {}),
    ("condition", {"rule": {"field": "points", "op": "gt", "value": 1}}),
    (
        "condition",
        {
            "attribute": "customer.fields.tier",
            "branches": [{"name": "gold", "values": ["g"]}, {"name": "silver"}],
        },
    ),
    ("condition", {"attribute": "x", "branches": "not a list"}),
    ("steps", {}),
    ("splitter", {"branches": [{"name": "1", "percent": 50}, {"name": "2", "percent": 50}, {"percent": 0}]}),
    ("splitter", {}),
    ("wait", {"mode": "window"}),
    ("ab_test", {"variants": [{"name": "A"}, {"name": "B"}, {"name": "control", "control": True}]}),
    ("limitation", {"max": 3}),
    ("wait_event", {}),
]
# What a freshly dropped node still needs from the marketer.
UNFILLED = {
    "event": {"event_type"},
    "schedule": {"audience"},
    "condition": {"rule.field"},
    "steps": {"steps.0.template"},
    "wait_event": {"event_type"},
}


def test_the_script_and_the_node_kinds_agree_on_ports_and_default_configs(page, live_server, superuser):
    log_in(page, username="boss")
    module = "/static/flows/node-forms.js"
    scripted_ports = page.evaluate(
        "async ([url, cases]) => { const m = await import(url); return cases.map(([k, c]) => m.portsOf(k, c)); }",
        [module, PORT_CASES],
    )
    assert scripted_ports == [REGISTRY[kind].ports(config) for kind, config in PORT_CASES]

    defaults = page.evaluate(
        "async ([url, kinds]) => { const m = await import(url); return kinds.map((k) => m.defaultConfig(k)); }",
        [module, sorted(REGISTRY)],
    )
    for kind, config in zip(sorted(REGISTRY), defaults):
        problems = {problem.field for problem in REGISTRY[kind].validate(config, ValidationContext())}
        assert problems == UNFILLED.get(kind, set()), kind
    assert page.problems == []


def test_the_side_forms_write_each_kinds_config(page, live_server, superuser):
    import re

    from playwright.sync_api import expect

    from customers.models import PromoPool, Segment
    from flows.models import Flow

    Segment.objects.create(slug="newsletter", name="Newsletter")
    PromoPool.objects.create(slug="welcome", name="Welcome")
    flow = new_flow("Forms")
    open_flow(page, flow)
    form = page.locator(".fc-form")

    def add(kind: str) -> None:
        page.locator(f'.fc-palette-item[data-kind="{kind}"]').click()
        expect(form.locator('[data-field="key"] input')).to_have_value(f"{kind}_1")

    add("schedule")
    form.locator('[data-field="recurrence.every"] select').select_option("week")
    form.locator('[data-field="recurrence.weekdays"] label', has_text="thu").locator("input").check()
    form.locator('[data-field="recurrence.at"] input').fill("09:30")
    form.locator('[data-field="audience.segment"] select').select_option("newsletter")

    add("splitter")
    form.get_by_role("button", name="Add branch").click()
    for index, percent in enumerate(("50", "30", "20"), start=1):
        form.get_by_label(f"Branch {index} percent").fill(percent)
    expect(page.locator('.drawflow-node[data-key="splitter_1"] .outputs .output')).to_have_count(3)
    form.get_by_label("Branch 1 name").fill("big")
    expect(page.locator('.drawflow-node[data-key="splitter_1"] .output_1 .fc-port')).to_have_text("big")

    add("ab_test")
    form.get_by_label("Variant 2 is the control").check()

    add("wait")
    form.locator('[data-field="mode"] select').select_option("window")
    form.locator('[data-field="window.from"] input').fill("08:00")

    add("limitation")
    form.locator('[data-field="max"] input').fill("10")
    form.locator('[data-field="period.unit"] select').select_option("calendar_days")
    form.locator('[data-field="period.every"] input').fill("2")

    add("steps")
    form.locator('[data-field="steps.0.action"] select').select_option("issue_promo_code")
    form.locator('[data-field="steps.0.pool"] select').select_option("welcome")
    form.locator('[data-field="relevance"] .nf-amount').fill("3")
    form.locator('[data-field="relevance"] select').select_option("PT{n}H")
    expect(page.locator(".fc-status")).to_have_text(re.compile("^Saved draft"))

    draft = Flow.objects.get(pk=flow.pk).draft
    configs = {node["key"]: node["config"] for node in draft.document["nodes"]}
    assert configs["schedule_1"] == {
        "recurrence": {"every": "week", "interval": 1, "weekdays": ["mon", "thu"], "at": "09:30"},
        "timezone": "flow",
        "audience": {"segment": "newsletter", "rule": None},
    }
    assert configs["splitter_1"] == {
        "branches": [
            {"name": "big", "percent": 50},
            {"name": "b", "percent": 30},
            {"name": "3", "percent": 20},
        ]
    }
    assert configs["ab_test_1"] == {
        "variants": [{"name": "A", "percent": 50}, {"name": "B", "percent": 50, "control": True}]
    }
    assert configs["wait_1"] == {
        "mode": "window",
        "window": {
            "weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "from": "08:00",
            "to": "18:00",
            "timezone": "flow",
        },
    }
    assert configs["limitation_1"] == {"max": 10, "period": {"unit": "calendar_days", "every": 2}}
    assert configs["steps_1"] == {
        "relevance": "PT3H",
        "steps": [{"action": "issue_promo_code", "pool": "welcome"}],
    }
    # Every node's settings are complete: only the unconnected graph is left to fix.
    assert draft.errors == [
        {"node": key, "field": "edges", "message": "not reachable from the start node"}
        for key in ("splitter_1", "ab_test_1", "wait_1", "limitation_1", "steps_1")
    ]
    assert page.problems == []
