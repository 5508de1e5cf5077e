"""Set-ups the browser tests share: flow documents written a node a line,
flows created or launched from them, the editor opened for a flow, email
templates, and the wait for the canvas's autosave. The pytest fixtures
(browser, page, sized, the users, templates) are in conftest.py, which
imports this module: nothing here imports conftest."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from channels.models import Template
from flows import lifecycle
from flows.models import Flow
from tests.flows.engine_kit import launch

# The two window sizes of issue #14 every editor test is run at.
VIEWPORTS = {"1366x768": (1366, 768), "1920x1080": (1920, 1080)}
SPEC_EXAMPLE = Path(__file__).resolve().parents[1] / "flows" / "fixtures" / "spec_example.json"
FIRST_NAME = "{{ customer.first_name }}"
PASSWORD = "browser-test-password"


# --- documents and flows ----------------------------------------------------------------


def spec_document() -> dict:
    """The SPEC §11 example (start, ask, day, still, remind), a fresh copy."""
    return json.loads(SPEC_EXAMPLE.read_text())


def flow_node(key: str, kind: str, *, at: tuple[int, int] | None = None, **config) -> dict:
    """A node of a maestra.flow/1 document; `at` is its (x, y) on the canvas."""
    item = {"key": key, "kind": kind, "config": config}
    if at is not None:
        item["position"] = {"x": at[0], "y": at[1]}
    return item


def send_email(template: str) -> dict:
    return {"action": "send", "channel": "email", "template": template}


def link(source: str, target: str, port: str | None = None) -> dict:
    """An edge as the canvas writes it: no port on a node's only exit."""
    return {"from": source, "to": target} if port is None else {"from": source, "port": port, "to": target}


def flow_document(name: str, nodes: Sequence[dict] = (), edges: Sequence[dict] = ()) -> dict:
    return {"format": "maestra.flow/1", "name": name, "nodes": list(nodes), "edges": list(edges)}


def new_flow(name: str, nodes: Sequence[dict] = (), edges: Sequence[dict] = ()) -> Flow:
    """A draft flow (never launched) from its nodes and edges."""
    return lifecycle.create_flow(document=flow_document(name, nodes, edges))


def live_with_draft(document: dict, draft_document: dict | None = None, *, paused: bool = False) -> Flow:
    """`document` launched (and paused if asked), then edited: a draft holding
    `draft_document`, or a copy of the live version without it."""
    flow = launch(document)
    if paused:
        flow = lifecycle.pause_flow(flow=flow)
    lifecycle.edit_flow(flow=flow)
    if draft_document is not None:
        lifecycle.save_draft(flow=flow, document=draft_document)
    return Flow.objects.get(pk=flow.pk)


def draft(flow: Flow) -> dict:
    """The flow's draft document as last saved."""
    return Flow.objects.get(pk=flow.pk).draft.document


def draft_node(flow: Flow, key: str) -> dict:
    """One node of the saved draft, by its key."""
    return next(item for item in draft(flow)["nodes"] if item["key"] == key)


def draft_config(flow: Flow, key: str) -> dict:
    return draft_node(flow, key)["config"]


def email_template(slug: str, subject: str = "Hi", text: str = "Hello", **extra) -> Template:
    """An email template named after its slug ("confirm" -> "Confirm")."""
    return Template.objects.create(
        slug=slug, name=slug.title(), channel="email", subject=subject, text=text, **extra
    )


def confirm_template(subject: str = "Please confirm", closing: str = ", please confirm.") -> Template:
    """The "confirm" template with an HTML part to preview (the name in bold)."""
    html = f"<p>Hello <b>{FIRST_NAME}</b>{closing}</p>"
    return email_template("confirm", subject, f"Hello {FIRST_NAME}", html=html)


# --- the editor -------------------------------------------------------------------------------


def log_in(page, *, username: str) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def open_flow(page, flow: Flow, *, username: str = "boss", view: str = "change"):
    """Log in and open one of the flow's admin pages (the editor by default);
    returns the page's response."""
    log_in(page, username=username)
    return page.goto(f"/admin/flows/flow/{flow.pk}/{view}/")


def node(page, key: str):
    """A node on the flow canvas, by its key."""
    return page.locator(f'.drawflow-node[data-key="{key}"]')


def _settled_box(page, locator) -> dict:
    """The element's box once it stopped moving (a drop, an autosave's
    re-render or the side panel opening can still be moving the canvas)."""
    last = None
    for _ in range(30):
        box = locator.bounding_box()
        if box is not None and box == last:
            return box
        last = box
        page.wait_for_timeout(100)
    return last


def _centre(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def connect(page, source: str, target: str, *, port: int = 1) -> None:
    """Drag from the source's exit (port index, 1-based) to the target's input,
    and wait for the line. The ports are read once the canvas is still, and the
    pointer is put on the target's input again just before the release (a
    node can grow or move while the pointer travels: its checks badge appears
    after an autosave); a drag that still misses is made again, as a user would."""
    from playwright.sync_api import expect  # installed with the dev tools only

    out_id = node(page, source).get_attribute("id")
    in_id = node(page, target).get_attribute("id")
    line = page.locator(f"svg.connection.node_out_{out_id}.node_in_{in_id}.output_{port}")
    output = node(page, source).locator(f".outputs .output_{port}")
    entry = node(page, target).locator(".inputs .input_1")
    for _ in range(3):
        page.mouse.move(*_centre(_settled_box(page, output)))
        page.mouse.down()
        page.mouse.move(*_centre(_settled_box(page, entry)), steps=12)
        page.mouse.move(*_centre(entry.bounding_box()), steps=2)
        page.mouse.up()
        try:
            expect(line).to_have_count(1, timeout=2000)
            return
        except AssertionError:
            continue
    expect(line).to_have_count(1)


def open_tab(page, name: str) -> None:
    """A tab of the flow editor's side panel (Node, Settings, Checks, Statistics)."""
    page.get_by_role("tab", name=re.compile(f"^{name}")).click()


def new_rule_segment(page, name: str):
    """As the Marketer: the add-segment form with `name`, of the rule kind;
    returns its rule builder."""
    log_in(page, username="mia")
    page.goto("/admin/customers/segment/add/")
    page.fill("#id_name", name)
    page.select_option("#id_kind", "rule")
    return page.locator(".rb")


def saves(page) -> int:
    return int(page.locator("#flow-canvas").get_attribute("data-saves") or 0)


QUIET = "() => !['pending', 'saving'].includes(document.getElementById('flow-canvas').dataset.saveState)"


@contextmanager
def saved(page):
    """Waits, after the block, until the autosave of its edit came back
    (first for any earlier save to end, so that one is not taken for it)."""
    page.wait_for_function(QUIET)
    before = saves(page)
    yield
    page.wait_for_function(
        "n => { const root = document.getElementById('flow-canvas');"
        " return Number(root.dataset.saves || 0) > n && root.dataset.saveState === 'saved'; }",
        arg=before,
    )
