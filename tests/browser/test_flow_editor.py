"""The full-width flow editor in a real browser, at 1,366×768 and 1,920×1,080
(issue #14, items 1, 2, 4 (canvas part) and 9): the page's layout, fit, zoom
and minimap, the tidy-up (dagre), placement without overlaps, keyboard use
of the palette and side panel, undo/redo of every edit checked in the
autosaved document, the flow settings panel, the confirmation dialogs and
labels on every control.

Screenshots go to test-artifacts/screenshots/ (gitignored, kept by CI)."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from flows import lifecycle
from flows.models import Flow
from tests.browser import kit
from tests.browser.kit import connect, draft, draft_node, node, open_flow, open_tab, saved
from tests.flows.engine_kit import launch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# --- helpers -------------------------------------------------------------------------


def boxes(page) -> dict[str, dict]:
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('.drawflow-node')]"
        ".map((n) => [n.dataset.key, n.getBoundingClientRect().toJSON()]))"
    )


def rect(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def overlapping(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def inside(inner: dict, outer: dict, slack: float = 1) -> bool:
    return (
        inner["x"] >= outer["x"] - slack
        and inner["y"] >= outer["y"] - slack
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack
    )


def assert_no_overlap(page) -> None:
    placed = list(boxes(page).items())
    for index, (key, box) in enumerate(placed):
        for other, other_box in placed[index + 1 :]:
            assert not overlapping(box, other_box), (key, other)


# Points along every drawn line that fall inside a node other than its two ends.
LINES_UNDER_NODES = """() => {
  const nodes = [...document.querySelectorAll('.drawflow-node')].map((n) => [n.id, n.getBoundingClientRect()]);
  const found = [];
  for (const svg of document.querySelectorAll('svg.connection')) {
    const classes = [...svg.classList];
    const from = classes.find((c) => c.startsWith('node_out_')).slice(9);
    const to = classes.find((c) => c.startsWith('node_in_')).slice(8);
    const path = svg.querySelector('path');
    const length = path.getTotalLength();
    const matrix = path.getScreenCTM();
    for (let i = 1; i < 50; i++) {
      const p = new DOMPoint(...Object.values(path.getPointAtLength(length * i / 50)).slice(0, 2)).matrixTransform(matrix);
      for (const [id, r] of nodes) {
        if (id === from || id === to) continue;
        if (p.x > r.left + 2 && p.x < r.right - 2 && p.y > r.top + 2 && p.y < r.bottom - 2) found.push([from, to, id]);
      }
    }
  }
  return found;
}"""

# Exit names and counts: each inside its own node, none over any node's entry.
LABELS_OVER_ENTRIES = """() => {
  const found = [];
  const entries = [...document.querySelectorAll('.drawflow-node .inputs .input')].map((i) => i.getBoundingClientRect());
  for (const label of document.querySelectorAll('.fc-port-box')) {
    const r = label.getBoundingClientRect();
    if (!r.width) continue;
    const own = label.closest('.drawflow-node').getBoundingClientRect();
    if (r.left < own.left - 1 || r.right > own.right + 1 || r.top < own.top - 1 || r.bottom > own.bottom + 1) found.push(['outside its node', label.textContent]);
    for (const e of entries) {
      if (r.left < e.right && e.left < r.right && r.top < e.bottom && e.top < r.bottom) found.push(['over an entry', label.textContent]);
    }
  }
  return found;
}"""

# Visible controls of the editor without an accessible name.
UNLABELLED = """() => {
  const root = document.getElementById('flow-canvas');
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const named = (el) => {
    if ((el.getAttribute('aria-label') || '').trim()) return true;
    const by = el.getAttribute('aria-labelledby');
    if (by && by.split(/\\s+/).some((id) => (document.getElementById(id)?.textContent || '').trim())) return true;
    if (el.labels && [...el.labels].some((l) => l.textContent.trim())) return true;
    if (['BUTTON', 'SUMMARY'].includes(el.tagName) && el.textContent.trim()) return true;
    return Boolean((el.title || '').trim());
  };
  return [...root.querySelectorAll('input, select, textarea, button, summary, [tabindex]')]
    .filter((el) => el.type !== 'hidden' && shown(el) && !named(el))
    .map((el) => el.outerHTML.slice(0, 160));
}"""


def open_demo_draft(page) -> Flow:
    """The demo (load_demo: the SPEC §11 flow, live), opened through a draft."""
    call_command("load_demo", "--username", "boss", "--password", kit.PASSWORD, stdout=StringIO())
    flow = Flow.objects.get()
    open_flow(page, flow)
    page.locator(".fc-actions button.fc-edit").click()
    expect(page.locator(".fc-version")).to_contain_text("Draft v2")
    expect(page.locator(".drawflow-node")).to_have_count(5)
    return flow


# --- 1. the page ---------------------------------------------------------------------------


def test_the_editor_fills_the_window_and_fits_the_demo_flow(sized, live_server, shoot):
    page = sized
    open_demo_draft(page)
    width, height = page.viewport_size["width"], page.viewport_size["height"]

    editor = rect(page, "#flow-canvas")
    stage = rect(page, ".fe-stage")
    # The editor takes the window's width and the height below the admin's header.
    assert editor["width"] >= width - 1
    assert abs(editor["y"] + editor["height"] - height) <= 1
    assert stage["width"] >= width - 140 - 340 - 2
    # No Django Save / Save and add another / Delete row on the editor page.
    for selector in ("input[name=_save]", "input[name=_addanother]", "a.deletelink", ".object-tools"):
        expect(page.locator(selector)).to_have_count(0)
    expect(page.locator("input[name=_continue]")).to_have_value("Save details")
    expect(page.locator("#nav-sidebar")).to_have_count(0)

    # After fit, all five nodes are in view, apart, readable, labels clear of entries.
    for key, box in boxes(page).items():
        assert inside(box, stage), key
    assert_no_overlap(page)
    assert page.evaluate(LABELS_OVER_ENTRIES) == []
    assert page.evaluate(LINES_UNDER_NODES) == []
    zoom = int(page.locator(".fc-zoom-reset").inner_text().split()[0])
    assert 50 <= zoom <= 100
    # Lifecycle buttons are in the toolbar, beside the checks and the save state.
    toolbar = page.locator(".fe-bar")
    expect(toolbar.get_by_role("button", name="Launch draft")).to_be_visible()
    expect(toolbar.get_by_role("button", name="Archive…")).to_be_visible()
    expect(toolbar.locator(".fe-checks")).to_have_text("✓ No problems")
    shoot(page, "demo-draft-fitted", full_page=False)
    assert page.problems == []


def test_zoom_fit_and_the_minimap_move_the_view(sized, live_server, shoot):
    page = sized
    open_demo_draft(page)
    stage = rect(page, ".fe-stage")
    minimap = page.locator(".fe-minimap")
    expect(minimap.locator("rect.fe-mini-node")).to_have_count(5)
    expect(minimap.locator("rect.fe-mini-view")).to_have_count(1)

    page.locator(".fc-zoom-reset").click()
    expect(page.locator(".fc-zoom-reset")).to_have_text("100 %")
    page.locator(".fc-zoom-in").click()
    expect(page.locator(".fc-zoom-reset")).to_have_text("120 %")
    page.locator(".fc-zoom-out").click()
    page.locator(".fc-zoom-out").click()
    expect(page.locator(".fc-zoom-reset")).to_have_text("83 %")

    # Pressing a corner of the minimap moves the view there.
    before = boxes(page)["start"]
    box = minimap.bounding_box()
    page.mouse.click(box["x"] + 8, box["y"] + box["height"] - 8)
    after = boxes(page)["start"]
    assert (after["x"], after["y"]) != (before["x"], before["y"])

    # The wheel pans; Ctrl + wheel zooms.
    page.mouse.move(stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2)
    page.mouse.wheel(0, 120)
    assert boxes(page)["start"]["y"] == pytest.approx(after["y"] - 120, abs=1)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -200)
    page.keyboard.up("Control")
    assert int(page.locator(".fc-zoom-reset").inner_text().split()[0]) > 83

    page.locator(".fe-fit").click()
    for key, node_box in boxes(page).items():
        assert inside(node_box, stage), key
    shoot(page, "after-fit", full_page=False)
    assert page.problems == []


def test_tidy_up_lays_the_flow_out_top_to_bottom_and_undo_puts_it_back(
    sized, live_server, superuser, templates, shoot
):
    page = sized
    document = kit.spec_document()
    # Every node saved on the same spot: a pile.
    for item in document["nodes"]:
        item["position"] = {"x": 40, "y": 40}
    flow = lifecycle.create_flow(document=document)
    open_flow(page, flow)
    expect(page.locator(".drawflow-node")).to_have_count(5)
    piled = boxes(page)
    assert len({(round(b["x"]), round(b["y"])) for b in piled.values()}) == 1

    with saved(page):
        page.get_by_role("button", name="Tidy up").click()
    assert_no_overlap(page)
    laid = boxes(page)
    stage = rect(page, ".fe-stage")
    for key, box in laid.items():
        assert inside(box, stage), key
    # Top to bottom along every edge; lines between ranks, labels clear.
    for edge in document["edges"]:
        assert laid[edge["to"]]["y"] > laid[edge["from"]]["y"] + laid[edge["from"]]["height"], edge
    assert page.evaluate(LINES_UNDER_NODES) == []
    assert page.evaluate(LABELS_OVER_ENTRIES) == []
    positions = {n["key"]: n["position"] for n in draft(flow)["nodes"]}
    assert len({(p["x"], p["y"]) for p in positions.values()}) == 5
    shoot(page, "tidied", full_page=False)

    with saved(page):
        page.get_by_role("button", name="Undo").click()
    assert {(n["position"]["x"], n["position"]["y"]) for n in draft(flow)["nodes"]} == {(40, 40)}
    with saved(page):
        page.get_by_role("button", name="Redo").click()
    assert {n["key"]: n["position"] for n in draft(flow)["nodes"]} == positions
    assert page.problems == []


# --- placement and the keyboard ---------------------------------------------------------------


def test_the_palette_works_from_the_keyboard_and_new_nodes_never_overlap(
    sized, live_server, superuser, shoot
):
    page = sized
    flow = kit.new_flow("Keys")
    open_flow(page, flow)
    stage = rect(page, ".fe-stage")

    # Enter and Space press a palette button: the node lands in view, selected.
    page.locator('.fc-palette-item[data-kind="event"]').focus()
    page.keyboard.press("Enter")
    expect(node(page, "event_1")).to_have_class(re.compile(r"\bfc-selected\b"))
    expect(page.locator('.fc-form [data-field="key"] input')).to_have_value("event_1")
    for index in range(1, 6):
        page.locator('.fc-palette-item[data-kind="steps"]').focus()
        page.keyboard.press(" ")
        key = f"steps_{index}"
        expect(node(page, key)).to_have_class(re.compile(r"\bfc-selected\b"))
        expect(page.locator('.fc-form [data-field="key"] input')).to_have_value(key)
        landed = node(page, key).bounding_box()
        assert inside(landed, stage), key
        # ... and not under the floating tools or the minimap.
        for overlay in (".fe-tools", ".fe-minimap"):
            assert not overlapping(landed, rect(page, overlay)), (key, overlay)
    expect(page.locator(".drawflow-node")).to_have_count(6)
    assert_no_overlap(page)

    # Two drops on the same point: the second moves aside.
    for _ in range(2):
        page.drag_and_drop(
            '.fc-palette-item[data-kind="wait"]', ".fc-area", target_position={"x": 150, "y": 120}
        )
    expect(page.locator(".drawflow-node")).to_have_count(8)
    assert_no_overlap(page)
    with saved(page):
        page.locator('.fc-form [data-field="title"] input').fill("Pause")
    stored = draft(flow)["nodes"]
    assert len(stored) == 8 and {n["key"] for n in stored} >= {"wait_1", "wait_2"}
    shoot(page, "palette-by-keyboard", full_page=False)

    # Tab from the canvas reaches a node and selects it; Enter goes to its
    # form, Escape back to the node; the arrows move it (one undo step).
    page.locator(".fc-area").focus()
    page.keyboard.press("Tab")
    expect(node(page, "event_1")).to_be_focused()
    expect(node(page, "event_1")).to_have_class(re.compile(r"\bfc-selected\b"))
    page.keyboard.press("Enter")
    expect(page.locator('.fc-form [data-field="key"] input')).to_be_focused()
    page.keyboard.press("Escape")
    expect(node(page, "event_1")).to_be_focused()
    start = draft_node(flow, "event_1")["position"]
    with saved(page):
        for _ in range(3):
            page.keyboard.press("ArrowRight")
    moved = draft_node(flow, "event_1")["position"]
    assert moved == {"x": start["x"] + 30, "y": start["y"]}
    with saved(page):
        page.keyboard.press("Control+z")
    assert draft_node(flow, "event_1")["position"] == start
    assert page.problems == []


def test_every_control_has_a_label_and_the_side_panel_works_by_keyboard(sized, live_server, superuser, shoot):
    page = sized
    flow = kit.new_flow("Labels")
    open_flow(page, flow)
    assert page.evaluate(UNLABELLED) == []
    for kind in ("event", "schedule", "condition", "steps", "splitter", "wait", "ab_test", "limitation"):
        page.locator(f'.fc-palette-item[data-kind="{kind}"]').click()
        expect(page.locator('.fc-form [data-field="key"] input')).to_have_value(f"{kind}_1")
        assert page.evaluate(UNLABELLED) == [], kind
    node(page, "wait_1").click()
    page.locator('.fc-form [data-field="mode"] select').select_option("dynamic")  # the wait's other form
    assert page.evaluate(UNLABELLED) == []

    # The tabs: arrow keys move between them, each panel's controls are named.
    page.get_by_role("tab", name="Node").focus()
    for name in ("Settings", "Checks", "Statistics"):
        page.keyboard.press("ArrowRight")
        expect(page.get_by_role("tab", name=re.compile(f"^{name}"))).to_be_focused()
        expect(page.get_by_role("tab", name=re.compile(f"^{name}"))).to_have_attribute(
            "aria-selected", "true"
        )
        assert page.evaluate(UNLABELLED) == [], name
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Node")).to_be_focused()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Statistics")).to_be_focused()

    # The settings panel from the keyboard: Tab into it, choose with the keys.
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Tab")
    expect(page.locator("#fe-set-name")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#fe-limit-mode")).to_be_focused()
    with saved(page):
        page.keyboard.press("ArrowDown")  # every time -> only once
    assert draft(flow)["launch_limit"] == {"mode": "once", "period": None, "max_total": None}
    page.locator("details.fe-more summary").click()
    assert page.evaluate(UNLABELLED) == []
    shoot(page, "settings-by-keyboard", full_page=False)
    assert page.problems == []


# --- undo / redo ------------------------------------------------------------------------------------


def test_undo_and_redo_cover_every_canvas_edit_in_the_saved_document(
    sized, live_server, superuser, templates, shoot
):
    page = sized
    start = kit.flow_node("start", "event", at=(60, 40), event_type="signup")
    # Side by side: the new node lands between them, in view.
    mail = kit.flow_node("mail", "steps", at=(640, 40), relevance="P1D", steps=[kit.send_email("confirm")])
    flow = kit.new_flow("Undo", [start, mail], [kit.link("start", "mail")])
    open_flow(page, flow)
    expect(page.locator(".drawflow-node")).to_have_count(2)
    expect(page.get_by_role("button", name="Undo")).to_be_disabled()

    def keys() -> list[str]:
        return [n["key"] for n in draft(flow)["nodes"]]

    def edges() -> list[dict]:
        return draft(flow)["edges"]

    # Add (palette), undo, redo.
    with saved(page):
        page.locator('.fc-palette-item[data-kind="wait"]').click()
    assert keys() == ["start", "mail", "wait_1"]
    with saved(page):
        page.keyboard.press("Control+z")
    assert keys() == ["start", "mail"]
    expect(page.locator(".drawflow-node")).to_have_count(2)
    with saved(page):
        page.keyboard.press("Control+Shift+z")
    assert keys() == ["start", "mail", "wait_1"]

    # Connect, undo, redo (Ctrl+Y).
    with saved(page):
        connect(page, "mail", "wait_1")
    assert edges() == [{"from": "start", "to": "mail"}, {"from": "mail", "to": "wait_1"}]
    with saved(page):
        page.keyboard.press("Control+z")
    assert edges() == [{"from": "start", "to": "mail"}]
    with saved(page):
        page.keyboard.press("Control+y")
    assert edges() == [{"from": "start", "to": "mail"}, {"from": "mail", "to": "wait_1"}]

    # Move with the mouse, undo.
    before = draft_node(flow, "wait_1")["position"]
    title = node(page, "wait_1").locator(".fc-title").bounding_box()
    with saved(page):
        page.mouse.move(title["x"] + 5, title["y"] + 5)
        page.mouse.down()
        page.mouse.move(title["x"] + 125, title["y"] + 45, steps=8)
        page.mouse.up()
    assert draft_node(flow, "wait_1")["position"] != before
    with saved(page):
        page.keyboard.press("Control+z")
    assert draft_node(flow, "wait_1")["position"] == before

    # A side-panel edit, then a title typed key by key: one undo step each.
    node(page, "wait_1").click()
    with saved(page):
        page.locator('.fc-form [data-field="duration"] .nf-amount').fill("3")
    assert draft_node(flow, "wait_1")["config"] == {
        "mode": "fixed",
        "duration": "P3D",
    }
    with saved(page):
        page.locator('.fc-form [data-field="title"] input').press_sequentially("Three days")
    assert draft_node(flow, "wait_1")["title"] == "Three days"
    with saved(page):
        page.get_by_role("button", name="Undo").click()
    wait = draft_node(flow, "wait_1")
    assert "title" not in wait or wait["title"] == ""
    assert wait["config"]["duration"] == "P3D"
    expect(page.locator('.fc-form [data-field="title"] input')).to_have_value("")
    with saved(page):
        page.get_by_role("button", name="Undo").click()
    assert draft_node(flow, "wait_1")["config"]["duration"] == "P1D"
    expect(page.locator('.fc-form [data-field="duration"] .nf-amount')).to_have_value("1")
    with saved(page):
        page.get_by_role("button", name="Redo").click()
    assert draft_node(flow, "wait_1")["config"]["duration"] == "P3D"

    # The Delete key removes a node with its edges, undoably.
    node(page, "mail").click()
    with saved(page):
        page.keyboard.press("Delete")
    assert keys() == ["start", "wait_1"] and edges() == []
    shoot(page, "node-deleted", full_page=False)
    with saved(page):
        page.keyboard.press("Control+z")
    assert keys() == ["start", "mail", "wait_1"]
    assert edges() == [{"from": "start", "to": "mail"}, {"from": "mail", "to": "wait_1"}]
    expect(page.locator(".drawflow-node")).to_have_count(3)

    # Disconnect (a clicked line and Delete), undo.
    mail_id = node(page, "mail").get_attribute("id")
    # A point of the line where nothing else (another line, a node) is on top.
    point = page.evaluate(
        "(id) => { const path = document.querySelector(`svg.connection.node_in_${id} path.main-path`);"
        " const length = path.getTotalLength();"
        " for (let i = 2; i < 19; i++) { const p = path.getPointAtLength(length * i / 20);"
        "  const q = new DOMPoint(p.x, p.y).matrixTransform(path.getScreenCTM());"
        "  if (document.elementFromPoint(q.x, q.y) === path) return [q.x, q.y]; } return null; }",
        mail_id,
    )
    assert point is not None
    page.mouse.click(*point)
    with saved(page):
        page.keyboard.press("Delete")
    assert edges() == [{"from": "mail", "to": "wait_1"}]
    with saved(page):
        page.keyboard.press("Control+z")
    assert len(edges()) == 2
    # A flow setting is undone like the rest (see also the settings test).
    open_tab(page, "Settings")
    with saved(page):
        page.locator("#fe-limit-mode").select_option("once")
    assert draft(flow)["launch_limit"]["mode"] == "once"
    with saved(page):
        page.get_by_role("button", name="Undo").click()
    assert "launch_limit" not in draft(flow)
    expect(page.locator("#fe-limit-mode")).to_have_value("every_time")
    assert page.problems == []


# --- 2. flow settings ---------------------------------------------------------------------------------


def test_the_settings_panel_writes_launch_limit_time_zone_and_dates(
    sized, live_server, superuser, templates, shoot
):
    page = sized
    document = kit.spec_document()
    for key in ("timezone", "launch_limit", "schedule"):
        del document[key]
    flow = lifecycle.create_flow(document=document)
    open_flow(page, flow)
    open_tab(page, "Settings")
    panel = page.locator("#fe-panel-settings")
    expect(panel.get_by_label("Launch limit")).to_have_value("every_time")
    expect(panel.locator('[data-field="launch_limit.period"]')).to_be_hidden()

    with saved(page):
        panel.get_by_label("Launch limit").select_option("periodic")
    with saved(page):
        panel.get_by_label("Period: number").fill("2")
    with saved(page):
        panel.get_by_label("Period: unit").select_option(label="weeks")
    with saved(page):
        panel.get_by_label("At most, in total").fill("5")
    assert draft(flow)["launch_limit"] == {"mode": "periodic", "period": "P2W", "max_total": 5}

    # The time zone: typed to search, picked, written on change.
    zone = panel.get_by_label("Time zone")
    expect(page.locator("#fe-timezone-list option[value='Europe/Berlin']")).to_have_count(1)
    with saved(page):
        zone.fill("Europe/Berlin")
        zone.press("Tab")
    assert draft(flow)["timezone"] == "Europe/Berlin"

    # Dates in the flow's zone; an end before the start is refused beside its control.
    with saved(page):
        panel.get_by_label("Starts").fill("2030-01-15T09:30")
    with saved(page):
        panel.get_by_label("Ends").fill("2030-01-10T09:00")
    assert draft(flow)["schedule"] == {
        "start_at": "2030-01-15T09:30:00+01:00",
        "end_at": "2030-01-10T09:00:00+01:00",
    }
    # In plain words (flows/plain_language.py), the code as the tooltip.
    end_error = panel.locator('[data-field="schedule.end_at"] .nf-error')
    expect(end_error).to_have_text("The end must be after the start")
    expect(end_error).to_have_attribute("title", "schedule.end_at: must be after start_at")
    expect(page.locator(".fe-checks")).to_have_text("⚠ 1 problem")
    shoot(page, "settings-error", full_page=False)
    with saved(page):
        panel.get_by_label("Ends").fill("2030-07-01T18:00")
    expect(panel.locator('[data-field="schedule.end_at"] .nf-error')).to_be_empty()
    assert draft(flow)["schedule"] == {
        "start_at": "2030-01-15T09:30:00+01:00",
        "end_at": "2030-07-01T18:00:00+02:00",
    }
    assert Flow.objects.get(pk=flow.pk).draft.errors == []

    # Another zone keeps the wall times.
    with saved(page):
        zone.fill("America/New_York")
        zone.press("Tab")
    assert draft(flow)["schedule"] == {
        "start_at": "2030-01-15T09:30:00-05:00",
        "end_at": "2030-07-01T18:00:00-04:00",
    }
    expect(panel.get_by_label("Starts")).to_have_value("2030-01-15T09:30")

    # A cap of 0 is refused beside its control; the Checks list leads back to it.
    with saved(page):
        panel.get_by_label("At most, in total").fill("0")
    cap_error = panel.locator('[data-field="launch_limit.max_total"] .nf-error')
    expect(cap_error).to_contain_text("enter a whole number of 1 or more")
    expect(cap_error).to_have_attribute("title", re.compile("must be an integer"))
    open_tab(page, "Checks")
    page.locator(".fc-error-list button", has_text="At most, in total: enter a whole number").click()
    expect(panel.get_by_label("At most, in total")).to_be_focused()
    with saved(page):
        panel.get_by_label("At most, in total").fill("")
    assert draft(flow)["launch_limit"] == {"mode": "periodic", "period": "P2W", "max_total": None}

    # Once: no period, no cap; Clear empties a date.
    with saved(page):
        panel.get_by_label("Launch limit").select_option("once")
    expect(panel.locator('[data-field="launch_limit.max_total"]')).to_be_hidden()
    with saved(page):
        panel.get_by_role("button", name="Clear the end").click()
    stored = draft(flow)
    assert stored["launch_limit"] == {"mode": "once", "period": None, "max_total": None}
    assert stored["schedule"] == {"start_at": "2030-01-15T09:30:00-05:00", "end_at": None}
    # The name is a setting too: the toolbar follows it.
    with saved(page):
        panel.get_by_label("Name").fill("Double opt-in")
    expect(page.locator(".fe-name")).to_have_text("Double opt-in")
    assert Flow.objects.get(pk=flow.pk).name == "Double opt-in"
    shoot(page, "settings-saved", full_page=False)
    assert page.problems == []


def test_a_launched_flows_settings_are_shown_read_only(sized, live_server, superuser, templates):
    page = sized
    open_flow(page, launch(kit.spec_document()))
    open_tab(page, "Settings")
    panel = page.locator("#fe-panel-settings")
    expect(panel.get_by_label("Launch limit")).to_have_value("periodic")
    expect(panel.get_by_label("Period: number")).to_have_value("7")
    expect(panel.get_by_label("Period: unit")).to_have_value("P{n}D")
    expect(panel.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    for control in panel.locator("input, select, button").all():
        expect(control).to_be_disabled()
    expect(page.locator(".fc-palette")).to_be_hidden()
    expect(page.get_by_role("button", name="Undo")).to_be_disabled()
    assert page.problems == []


# --- 4. confirmations --------------------------------------------------------------------------------


def test_archive_delete_flow_and_discard_draft_ask_first(sized, live_server, superuser, templates, shoot):
    page = sized
    live = kit.live_with_draft(kit.spec_document())
    never = kit.new_flow("Scratch")
    dialog = page.get_by_role("dialog")

    # Discard draft: Escape cancels, the confirm button discards.
    open_flow(page, live)
    page.get_by_role("button", name="Discard draft…").click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Discard the draft?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert Flow.objects.get(pk=live.pk).draft is not None
    page.get_by_role("button", name="Discard draft…").click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Discard draft").click()
    expect(page.locator(".messagelist")).to_contain_text("The draft was deleted.")
    assert Flow.objects.get(pk=live.pk).draft is None

    # Archive: permanent, so it asks, and says so.
    page.get_by_role("button", name="Archive…").click()
    expect(dialog.get_by_role("heading")).to_have_text("Archive this flow?")
    expect(dialog).to_contain_text("runs in progress stop at once")
    shoot(page, "archive-dialog", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    assert Flow.objects.get(pk=live.pk).status == Flow.Status.ACTIVE
    page.get_by_role("button", name="Archive…").click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Archive the flow").click()
    expect(page.locator(".messagelist")).to_contain_text("The flow is archived")
    assert Flow.objects.get(pk=live.pk).status == Flow.Status.ARCHIVED

    # Delete flow (never launched), from the More menu.
    page.goto(f"/admin/flows/flow/{never.pk}/change/")
    page.locator("details.fe-more summary").click()
    page.get_by_role("button", name="Delete flow…").click()
    expect(dialog.get_by_role("heading")).to_have_text("Delete “Scratch”?")
    dialog.get_by_role("button", name="Cancel").click()
    assert Flow.objects.filter(pk=never.pk).exists()
    page.get_by_role("button", name="Delete flow…").click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Delete the flow").click()
    expect(page.locator(".messagelist")).to_contain_text("was deleted successfully")
    assert not Flow.objects.filter(pk=never.pk).exists()
    assert page.problems == []


def test_the_layout_puts_branches_in_their_exits_order_without_overlaps(page, live_server, superuser):
    """canvas-layout.js on its own: a condition whose "no" node comes first in
    the document still gets its "yes" node on the left; nodes keep apart and
    every rank is below the one it comes from."""
    kit.log_in(page, username="boss")
    nodes = [
        {"key": "start", "w": 220, "h": 60, "ports": 1},
        {"key": "still", "w": 220, "h": 70, "ports": 2},
        {"key": "later", "w": 220, "h": 60, "ports": 1},
        {"key": "remind", "w": 220, "h": 60, "ports": 1},
        {"key": "after", "w": 220, "h": 60, "ports": 1},
    ]
    edges = [
        {"from": "start", "to": "still", "order": 0},
        {"from": "still", "to": "later", "order": 1},  # "no", listed first
        {"from": "still", "to": "remind", "order": 0},  # "yes"
        {"from": "remind", "to": "after", "order": 0},
    ]
    placed = page.evaluate(
        "async ([nodes, edges]) => { const m = await import('/static/flows/canvas-layout.js');"
        " return Object.fromEntries(m.layered(nodes, edges)); }",
        [nodes, edges],
    )
    assert placed["remind"]["x"] < placed["later"]["x"]
    assert placed["start"]["y"] < placed["still"]["y"] < placed["remind"]["y"] == placed["later"]["y"]
    assert placed["after"]["y"] > placed["remind"]["y"]
    boxes_ = [
        {"x": placed[n["key"]]["x"], "y": placed[n["key"]]["y"], "width": n["w"], "height": n["h"]}
        for n in nodes
    ]
    for index, box in enumerate(boxes_):
        for other in boxes_[index + 1 :]:
            assert not overlapping(box, other)
    free = page.evaluate(
        "async () => { const m = await import('/static/flows/canvas-layout.js');"
        " const taken = [{x: 0, y: 0, w: 220, h: 60}, {x: 0, y: 100, w: 220, h: 60}];"
        " const spot = m.freeSpot({x: 10, y: 10, w: 220, h: 60}, taken);"
        " return [spot, taken.some((t) => m.overlaps({...spot, w: 220, h: 60}, t))]; }"
    )
    assert free[1] is False
    assert page.problems == []
