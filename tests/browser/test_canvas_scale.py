"""The canvas at the stable limit of 150 nodes: it draws them all, selects
from the node list, moves and deletes a node and autosaves the whole
document. Timings are recorded in test-artifacts/ (measured, not asserted:
speed belongs to benchmarks, not to pass/fail)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from channels.models import Template
from flows import lifecycle
from flows.models import Flow
from tests.browser.kit import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NODES = 150
PER_ROW = 10


def big_document() -> dict:
    nodes = [
        {"key": "start", "kind": "event", "config": {"event_type": "visit"}, "position": {"x": 40, "y": 40}}
    ]
    for index in range(1, NODES):
        kind = "wait" if index % 2 else "steps"
        config = (
            {"mode": "fixed", "duration": "PT1H"}
            if kind == "wait"
            else {"relevance": "P1D", "steps": [{"action": "send", "channel": "email", "template": "hello"}]}
        )
        row, column = divmod(index, PER_ROW)
        nodes.append(
            {
                "key": f"n{index}",
                "kind": kind,
                "config": config,
                "position": {"x": 40 + 300 * column, "y": 40 + 160 * row},
            }
        )
    edges = [{"from": nodes[i]["key"], "to": nodes[i + 1]["key"]} for i in range(NODES - 1)]
    return {"format": "maestra.flow/1", "name": "Big flow", "nodes": nodes, "edges": edges}


def test_the_canvas_handles_150_nodes(page, live_server, superuser, shoot, timer):
    Template.objects.create(slug="hello", name="Hello", channel="email", subject="Hi", text="Hello")
    flow = lifecycle.create_flow(document=big_document())
    assert flow.draft.errors == []
    log_in(page, username="boss")
    timer.lap("set up and log in")

    page.goto(f"/admin/flows/flow/{flow.pk}/change/")
    expect(page.locator(".drawflow-node")).to_have_count(NODES)
    expect(page.locator(".fc-node-count")).to_have_text(f"{NODES} / {NODES}")
    timer.lap("open the page, draw 150 nodes")
    # Where the opening time goes: the server's answer vs. drawing in the page.
    navigation = page.evaluate(
        "(() => ({response: performance.getEntriesByType('navigation')[0].responseEnd,"
        " start: performance.getEntriesByName('flow-canvas-start')[0].startTime,"
        " draw: performance.getEntriesByName('flow-canvas-draw')[0].duration}))()"
    )

    # Select from the list with the keyboard: n75 is the 76th entry.
    page.get_by_role("tab", name=re.compile("^Checks")).click()
    page.locator(".fc-node-list button[data-node]").nth(75).focus()
    page.keyboard.press("Enter")
    expect(page.locator('.fc-form [data-field="key"] input')).to_have_value("n75")
    expect(page.locator('.drawflow-node[data-key="n75"]')).to_be_in_viewport()
    timer.lap("select from the list")

    # Move it by mouse; the autosave carries all 150 nodes.
    box = page.locator('.drawflow-node[data-key="n75"] .fc-title').bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + 5)
    page.mouse.down()
    page.mouse.move(box["x"] + 60, box["y"] + 45, steps=10)
    page.mouse.up()
    expect(page.locator(".fc-status")).to_have_text(re.compile("^Saved draft"))
    timer.lap("drag a node, autosave")
    moved = {n["key"]: n for n in Flow.objects.get(pk=flow.pk).draft.document["nodes"]}["n75"]["position"]
    assert moved != {"x": 40 + 300 * 5, "y": 40 + 160 * 7}

    # Delete it with the Delete key: its edges go too, the chain breaks.
    page.locator('.drawflow-node[data-key="n75"] .fc-title').click()
    page.keyboard.press("Delete")
    expect(page.locator(".drawflow-node")).to_have_count(NODES - 1)
    expect(page.locator(".fc-status")).to_have_text(re.compile(r"^Saved draft v1 · \d+ errors?"))
    timer.lap("delete a node, autosave, validation")
    document = Flow.objects.get(pk=flow.pk).draft.document
    assert len(document["nodes"]) == NODES - 1 and "n75" not in {n["key"] for n in document["nodes"]}
    assert len(document["edges"]) == NODES - 3
    errors = Flow.objects.get(pk=flow.pk).draft.errors
    assert any(e.get("node") == "n76" for e in errors)  # no longer reachable from the start
    expect(page.locator('.drawflow-node[data-key="n76"]')).to_have_class(re.compile(r"\bfc-has-error\b"))
    shoot(page, "150-nodes")
    timer.stages.append(("  opening: the page's HTML arrived after", navigation["response"] / 1000))
    timer.stages.append(("  opening: the canvas script started after", navigation["start"] / 1000))
    timer.stages.append(("  opening: the canvas drew 150 nodes and 149 edges in", navigation["draw"] / 1000))
    assert page.problems == []
