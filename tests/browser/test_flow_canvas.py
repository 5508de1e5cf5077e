"""The marketer's admin in a real browser: build the SPEC §11 flow on the
canvas by drag and drop, see a validation error on its node and fix it,
launch, post an event, tick the engine, read the statistics on the canvas and
the customer's activity; a marketer is kept out of API keys and users.

Screenshots of each stage go to test-artifacts/ (gitignored)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from channels.models import Message, Template
from flows.models import Flow
from tests.browser.kit import connect, log_in, node, open_tab

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAVED = re.compile(r"^Saved draft")


@pytest.fixture
def seed_templates(transactional_db):
    for slug in ("confirm", "reminder"):
        Template.objects.create(
            slug=slug,
            name=slug.title(),
            channel="email",
            purpose=Template.Purpose.SERVICE,
            subject=f"Please {slug}",
            text="Hello {{ customer.first_name }}, please confirm your subscription.",
        )


def wait_saved(page) -> None:
    expect(page.locator(".fc-status")).to_have_text(SAVED)


def drop(page, kind: str, x: int, y: int, *, key: str) -> None:
    """Drag a kind from the palette onto the canvas, then name the new node."""
    page.drag_and_drop(f'.fc-palette-item[data-kind="{kind}"]', ".fc-area", target_position={"x": x, "y": y})
    form = page.locator(".fc-form")
    expect(form.locator("h3")).to_contain_text("node")
    form.locator('[data-field="key"] input').fill(key)
    expect(node(page, key)).to_be_visible()


def draft_document(flow: Flow) -> dict:
    return Flow.objects.get(pk=flow.pk).draft.document


def test_it_builds_launches_and_watches_the_seed_flow(
    page, live_server, superuser, seed_templates, shoot, timer
):
    from customers.models import Customer
    from customers.services import upsert_customers
    from flows.engine.tick import tick

    log_in(page, username="boss")
    timer.lap("log in")

    # An empty flow from just a name.
    page.goto("/admin/flows/flow/add/")
    page.fill("#id_name", "Subscription confirmation")
    page.click("input[name=_save]")
    expect(page.locator("#flow-canvas")).to_be_visible()
    flow = Flow.objects.get(name="Subscription confirmation")
    assert flow.status == Flow.Status.DRAFT
    shoot(page, "1-empty-canvas")
    timer.lap("empty flow")

    # Drag and drop the five nodes of the SPEC §11 example.
    drop(page, "event", 40, 60, key="start")
    page.locator('.fc-form [data-field="event_type"] input').fill("subscription_changed")
    drop(page, "steps", 340, 60, key="ask")
    page.locator('.fc-form [data-field="steps.0.template"] select').select_option("confirm")
    drop(page, "wait", 640, 60, key="day")
    expect(page.locator('.fc-form [data-field="duration"] .nf-amount')).to_have_value("1")
    drop(page, "condition", 340, 300, key="still")
    # The rule builder: a field from the picker, a status from the list (no typing).
    page.locator('.fc-form [data-field="rule.field"] select').select_option("subscription.email")
    page.locator('.fc-form [data-field="rule.op"] select').select_option("eq")
    page.locator('.fc-form [data-field="rule.value"] select').select_option("requires_confirmation")
    drop(page, "steps", 640, 300, key="remind")  # its template is left unfilled
    connect(page, "start", "ask")
    connect(page, "ask", "day")
    connect(page, "day", "still")
    connect(page, "still", "remind", port=1)  # "yes"
    wait_saved(page)
    timer.lap("drag, drop, connect")

    # The unfilled node shows its error, on the node and in the list.
    remind = node(page, "remind")
    expect(remind).to_have_class(re.compile(r"\bfc-has-error\b"))
    expect(remind.locator(".fc-errors")).to_contain_text("1 error")
    open_tab(page, "Checks")
    # In plain words; the code stays as the tooltip.
    error_entry = page.locator(".fc-error-list button", has_text="remind · Step 1: choose a template to send")
    expect(error_entry).to_have_attribute("title", re.compile(r"remind · steps\.0\.template: missing"))
    expect(error_entry).to_be_visible()
    for other in ("start", "ask", "day", "still"):
        expect(node(page, other)).not_to_have_class(re.compile(r"\bfc-has-error\b"))
    assert Flow.objects.get(pk=flow.pk).status == Flow.Status.DRAFT
    shoot(page, "2-unfilled-node-error")

    # The list entry selects the failing node; fill it in.
    error_entry.click()
    expect(page.locator('.fc-form [data-field="key"] input')).to_have_value("remind")
    expect(page.locator('.fc-form [data-field="steps.0.template"] .nf-error')).not_to_be_empty()
    page.locator('.fc-form [data-field="steps.0.template"] select').select_option("reminder")
    wait_saved(page)
    expect(page.locator(".fc-validity")).to_have_text(re.compile("No errors"))
    expect(remind).not_to_have_class(re.compile(r"\bfc-has-error\b"))
    timer.lap("fix the error")

    # The stored document is the maestra.flow/1 document, positions included.
    document = draft_document(flow)
    assert [(n["key"], n["kind"]) for n in document["nodes"]] == [
        ("start", "event"),
        ("ask", "steps"),
        ("day", "wait"),
        ("still", "condition"),
        ("remind", "steps"),
    ]
    assert document["edges"] == [
        {"from": "start", "to": "ask"},
        {"from": "ask", "to": "day"},
        {"from": "day", "to": "still"},
        {"from": "still", "port": "yes", "to": "remind"},
    ]
    by_key = {n["key"]: n for n in document["nodes"]}
    assert by_key["start"]["config"]["event_type"] == "subscription_changed"
    assert by_key["ask"]["config"] == {
        "relevance": "P1D",
        "steps": [{"action": "send", "channel": "email", "template": "confirm"}],
    }
    assert by_key["day"]["config"] == {"mode": "fixed", "duration": "P1D"}
    assert by_key["still"]["config"] == {
        "rule": {"field": "subscription.email", "op": "eq", "value": "requires_confirmation"}
    }
    assert by_key["remind"]["config"]["steps"][0]["template"] == "reminder"
    assert all(set(n["position"]) == {"x", "y"} for n in document["nodes"])
    assert by_key["start"]["position"]["x"] < by_key["ask"]["position"]["x"] < by_key["day"]["position"]["x"]
    assert Flow.objects.get(pk=flow.pk).status == Flow.Status.READY
    shoot(page, "3-valid-draft")

    # Keyboard: Delete removes the selected node (a throwaway one), Tab/Enter
    # in the node list selects.
    page.locator('.fc-palette-item[data-kind="splitter"]').click()
    expect(node(page, "splitter_1")).to_be_visible()
    page.locator(".fc-area").click(position={"x": 5, "y": 5})
    node(page, "splitter_1").click()
    page.keyboard.press("Delete")
    expect(node(page, "splitter_1")).to_have_count(0)
    wait_saved(page)
    # A clicked connection takes the Delete key; drawing it again restores it.
    remind_id = node(page, "remind").get_attribute("id")
    page.locator(f"svg.connection.node_in_{remind_id} path.main-path").click()
    page.keyboard.press("Delete")
    expect(page.locator(f"svg.connection.node_in_{remind_id}")).to_have_count(0)
    expect(node(page, "remind")).to_be_visible()
    wait_saved(page)
    assert len(draft_document(flow)["edges"]) == 3
    connect(page, "still", "remind", port=1)
    wait_saved(page)
    assert len(draft_document(flow)["edges"]) == 4
    open_tab(page, "Checks")
    page.locator(".fc-node-list button[data-node]").first.focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator('.fc-form [data-field="key"] input')).to_have_value("ask")
    assert [n["key"] for n in draft_document(flow)["nodes"]] == ["start", "ask", "day", "still", "remind"]
    timer.lap("keyboard")

    # Launch from the canvas; the worker's part is done by a tick.
    page.locator('.fc-actions button[value="launch"]').click()
    # The launch review asks first (flows/static/flows/launch-review.js).
    review = page.get_by_role("dialog")
    expect(review).to_contain_text("What starts it")
    with page.expect_navigation():
        review.get_by_role("button", name="Launch", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("Launch started")
    tick()
    page.reload()
    flow = Flow.objects.get(pk=flow.pk)
    assert flow.status == Flow.Status.ACTIVE
    expect(page.locator(".fc-version")).to_contain_text("v1 is launched and read-only")
    expect(page.locator(".fc-palette")).to_be_hidden()
    # A live flow opens with its statistics: nobody has entered yet.
    expect(node(page, "start").locator(".fc-stat-entered")).to_have_text("entered 0")
    shoot(page, "4-launched-read-only")
    timer.lap("launch")

    # A customer whose email subscription needs confirmation: the product
    # emits subscription_changed; one tick runs the flow up to the wait.
    upsert_customers(
        rows=[
            {
                "external_id": "anna-1",
                "email": "anna@example.com",
                "first_name": "Anna",
                "subscriptions": {"email": "requires_confirmation"},
            }
        ]
    )
    tick()
    anna = Customer.objects.get(external_id="anna-1")
    assert Message.objects.filter(customer=anna, template_slug="confirm", status="sent").count() == 1

    open_tab(page, "Statistics")
    page.locator(".fc-stats-show").click()
    expect(node(page, "start").locator(".fc-stat-entered")).to_have_text("entered 1 · 100.0 %")
    expect(node(page, "ask").locator(".fc-stat-messages")).to_have_text("sent 1")
    expect(node(page, "day").locator(".fc-stat-waiting")).to_have_text("waiting now 1")
    expect(node(page, "ask").locator(".fc-port-count")).to_have_text("1 · 100.0 %")
    node(page, "day").click()
    expect(page.locator(".fc-stats-details")).to_contain_text("Statistics of day")
    shoot(page, "5-statistics-on-canvas")
    timer.lap("event, tick, statistics")

    # The customer's activity: found by email, one run as a timeline.
    page.goto("/admin/flows/flow/activity/?q=anna%40example.com")
    timeline = page.locator(".activity-run")
    expect(timeline).to_have_count(1)
    expect(timeline).to_contain_text("Subscription confirmation")
    expect(timeline.locator(".activity-node")).to_have_count(2)  # start and ask passed; day in progress
    expect(timeline.locator(".activity-message")).to_contain_text("confirm")
    expect(timeline.locator(".activity-message")).to_contain_text("sent")
    # The settings in force then, in words (the JSON folded inside).
    settings = timeline.locator("details.activity-settings").nth(1)
    settings.locator("summary").first.click()
    words = settings.locator("dl.settings-words").first
    expect(words).to_be_visible()
    expect(words).to_contain_text("Relevant for")
    expect(words).to_contain_text("1 day")
    expect(words.locator("dt", has_text="Template")).to_be_visible()
    expect(settings.locator("pre")).to_be_hidden()
    expect(settings.locator("pre")).to_contain_text('"template": "confirm"')
    shoot(page, "6-customer-activity")
    timer.lap("activity")

    # Edit opens a draft of the live version on the canvas; Delete draft drops it.
    page.goto(f"/admin/flows/flow/{flow.pk}/change/")
    page.locator(".fc-actions button.fc-edit").click()
    expect(page.locator(".fc-version")).to_contain_text("Draft v2")
    expect(page.locator(".fc-palette")).to_be_visible()
    expect(page.locator(".drawflow-node")).to_have_count(5)
    assert Flow.objects.get(pk=flow.pk).draft.document == Flow.objects.get(pk=flow.pk).live_version.document
    page.locator(".fc-actions").get_by_role("button", name="Discard draft…").click()
    page.get_by_role("dialog").get_by_role("button", name="Discard draft").click()
    expect(page.locator(".fc-version")).to_contain_text("v1 is launched and read-only")
    assert Flow.objects.get(pk=flow.pk).draft is None
    timer.lap("edit and delete draft")
    assert page.problems == []


def test_it_keeps_a_marketer_out_of_api_keys_and_users(page, live_server, marketer, shoot, timer):
    log_in(page, username="mia")
    expect(page.locator("#content-main")).to_contain_text("Flows")
    expect(page.locator("#content-main")).not_to_contain_text("API key")
    expect(page.locator("#content-main")).not_to_contain_text("Users")
    shoot(page, "1-marketer-index")
    for url in ("/admin/api/apikey/", "/admin/auth/user/", "/admin/auth/group/"):
        response = page.goto(url)
        assert response.status == 403, url
    page.problems.clear()  # the browser logs each 403 as a console error
    response = page.goto("/admin/flows/flow/add/")
    assert response.status == 200
    page.fill("#id_name", "Marketer's flow")
    page.click("input[name=_save]")
    expect(page.locator("#flow-canvas")).to_be_visible()
    page.locator('.fc-palette-item[data-kind="event"]').click()
    wait_saved(page)
    assert [n["kind"] for n in Flow.objects.get(name="Marketer's flow").draft.document["nodes"]] == ["event"]
    shoot(page, "2-marketer-canvas")
    timer.lap("marketer")
    assert page.problems == []
