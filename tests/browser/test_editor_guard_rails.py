"""Guard rails, versions on the canvas and live status in a real browser
(issue #14, items 4, 6 and 8), at 1,366×768 and 1,920×1,080: the launch
review dialog (keyboard, labels, Cancel changes nothing), a paused flow's
draft launched paused with the status following launching → paused without
a reload, the same draft in two tabs (the stale tab gets a conflict banner
and reloads, nothing is overwritten), the marks of a draft's changes against
the live version and an old version read-only on the canvas.

Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from flows import lifecycle
from flows.models import Flow
from tests.browser import kit
from tests.browser.kit import node, open_flow, open_tab, saved

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

S = Flow.Status


def live_flow_with_draft(*, paused: bool = False) -> Flow:
    """The SPEC §11 example live (paused if asked), its draft with "ask"
    retitled and "remind" replaced by a two-hour wait "later"."""
    changed = kit.spec_document()
    changed["nodes"][1]["title"] = "Ask nicely"
    changed["nodes"] = [n for n in changed["nodes"] if n["key"] != "remind"]
    changed["edges"] = [e for e in changed["edges"] if e["to"] != "remind"]
    changed["nodes"].append(kit.flow_node("later", "wait", mode="fixed", duration="PT2H"))
    changed["edges"].append(kit.link("still", "later", "yes"))
    return kit.live_with_draft(kit.spec_document(), changed, paused=paused)


@pytest.fixture
def editing(sized, live_server, superuser, templates):
    """(page, flow): the editor open on live_flow_with_draft(), at each window size."""
    flow = live_flow_with_draft()
    open_flow(sized, flow)
    return sized, flow


def test_the_launch_review_and_a_paused_flow_launched_paused_live(
    sized, live_server, superuser, templates, shoot
):
    page = sized
    flow = live_flow_with_draft(paused=True)
    open_flow(page, flow)
    dialog = page.get_by_role("dialog")
    launch = page.get_by_role("button", name="Launch draft…")

    # The review: what starts it, who would enter, limit, schedule, changes, resume.
    launch.click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Launch draft v2?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    for fact in ("What starts it", "Audience now", "Launch limit", "Schedule", "Changes against live v1"):
        expect(dialog.locator("dt", has_text=fact)).to_be_visible()
    expect(dialog).to_contain_text("“subscription_changed”")
    expect(dialog).to_contain_text("as their events arrive")
    expect(dialog).to_contain_text("at most once every 1 week")
    expect(dialog).to_contain_text("Added: later")
    expect(dialog).to_contain_text("Removed: remind")
    keep = dialog.get_by_label("keep it paused (no new runs until you resume it)")
    resume = dialog.get_by_label("resume it: customers start entering again")
    expect(keep).to_be_checked()
    expect(resume).not_to_be_checked()
    shoot(page, "launch-review", full_page=False)
    # Keyboard: Escape cancels, nothing happens.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert Flow.objects.get(pk=flow.pk).status == S.PAUSED

    # Keep it paused: the flow goes to launching, then paused, without a reload.
    launch.click()
    expect(keep).to_be_checked()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Launch", exact=True).click()
    assert Flow.objects.get(pk=flow.pk).status == S.LAUNCHING
    expect(page.locator(".fe-state")).to_have_text("Launching")
    page.evaluate("() => { window.__sameDocument = true; }")
    lifecycle.finish_launch(flow_id=flow.pk)
    expect(page.locator(".fe-state")).to_have_text("Paused", timeout=10_000)
    assert page.evaluate("() => window.__sameDocument") is True
    expect(page.locator(".fe-announce")).to_contain_text("The flow is now Paused.")
    # The toolbar follows: Resume and Archive are offered, Launch is gone.
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.get_by_role("button", name="Launch draft…")).to_have_count(0)
    shoot(page, "launched-paused-live-status", full_page=False)
    flow = Flow.objects.get(pk=flow.pk)
    assert (flow.status, flow.live_version.number) == (S.PAUSED, 2)
    assert page.problems == []


def test_launching_a_never_launched_flow_shows_active_without_a_reload(
    sized, live_server, superuser, templates, shoot
):
    page = sized
    flow = lifecycle.create_flow(document=kit.spec_document())
    open_flow(page, flow)
    page.get_by_role("button", name="Launch…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("fieldset")).to_have_count(0)  # not paused: nothing to ask
    expect(dialog.locator("dt", has_text="Changes against")).to_have_count(0)
    with page.expect_navigation():
        dialog.get_by_role("button", name="Launch", exact=True).click()
    expect(page.locator(".fe-state")).to_have_text("Launching")
    page.evaluate("() => { window.__sameDocument = true; }")
    lifecycle.finish_launch(flow_id=flow.pk)
    expect(page.locator(".fe-state")).to_have_text("Active", timeout=10_000)
    expect(page.locator(".fc-version")).to_contain_text("v1 is launched and read-only")
    assert page.evaluate("() => window.__sameDocument") is True
    shoot(page, "active-without-reload", full_page=False)
    assert page.problems == []


def test_the_same_draft_in_two_tabs_never_overwrites_silently(editing, shoot):
    page, flow = editing
    other = page.context.new_page()
    other.set_viewport_size(page.viewport_size)
    other.goto(page.url)

    open_tab(page, "Settings")
    with saved(page):
        page.fill("#fe-set-name", "Named in tab one")
        page.locator("#fe-set-name").blur()
    assert Flow.objects.get(pk=flow.pk).draft.document["name"] == "Named in tab one"

    # The other tab still has the old revision: its save is refused and says so.
    open_tab(other, "Settings")
    other.fill("#fe-set-name", "Named in the stale tab")
    other.locator("#fe-set-name").blur()
    banner = other.get_by_role("alert").filter(has_text="Someone else changed this draft")
    expect(banner).to_be_visible()
    expect(other.locator("#flow-canvas")).to_have_attribute("data-save-state", "conflict")
    shoot(other, "draft-conflict", full_page=False)
    assert Flow.objects.get(pk=flow.pk).draft.document["name"] == "Named in tab one"

    # Reload shows the other tab's version; the banner is gone.
    with other.expect_navigation():
        banner.get_by_role("button", name="Reload the draft").click()
    expect(other.locator(".fe-conflict")).to_be_hidden()
    expect(other.locator(".fe-name")).to_have_text("Named in tab one")
    other.wait_for_function(kit.QUIET)
    assert page.problems == []


def test_a_drafts_changes_are_marked_and_old_versions_open_on_the_canvas(editing, shoot):
    page, flow = editing

    expect(node(page, "later")).to_have_attribute("data-diff", "added")
    expect(node(page, "later").locator(".fe-diff-badge")).to_have_text("new")
    expect(node(page, "ask")).to_have_attribute("data-diff", "changed")
    expect(node(page, "still")).to_have_attribute("data-diff", "changed")  # its yes exit moved
    expect(node(page, "day")).to_have_attribute("data-diff", "")
    open_tab(page, "Checks")
    changes = page.locator(".fe-diff")
    expect(changes.get_by_role("heading")).to_have_text("Changes against live v1")
    expect(changes.locator(".fe-diff-removed")).to_contain_text("remind")
    shoot(page, "draft-diff", full_page=False)
    # A list item selects its node.
    changes.get_by_role("button", name="later").click()
    expect(node(page, "later")).to_have_class(re.compile("fc-selected"))

    # An edit that undoes a change clears its mark (the diff follows every autosave).
    node(page, "ask").focus()  # keyboard: a focused node is selected
    with saved(page):
        page.get_by_label("Title").fill("Ask to confirm")
        page.get_by_label("Title").blur()
    expect(node(page, "ask")).to_have_attribute("data-diff", "")

    # Version 1 opens read-only on the canvas, not as JSON.
    page.goto(f"/admin/flows/flow/{flow.pk}/versions/1/")
    expect(page.locator(".drawflow-node")).to_have_count(5)
    expect(page.locator(".fc-palette")).to_be_hidden()
    expect(page.locator(".fc-version")).to_contain_text("Version 1, read-only.")
    expect(page.locator("pre.flow-document")).to_be_hidden()  # the JSON is folded away below
    node(page, "remind").focus()
    expect(page.locator(".fc-form input").first).to_be_disabled()
    shoot(page, "version-1-on-canvas", full_page=False)
    # The draft (v2) on its version page is marked against live too.
    page.goto(f"/admin/flows/flow/{flow.pk}/versions/2/")
    expect(node(page, "later")).to_have_attribute("data-diff", "added")
    assert page.problems == []


def test_the_launch_review_counts_the_audience_now(sized, live_server, superuser, templates, shoot):
    """A scheduled flow's review shows who would enter now (the audience
    preview's count), its recurrence, limit and schedule; Cancel launches nothing."""
    from customers.models import Customer

    for n in range(3):
        Customer.objects.create(external_id=f"g{n}", email=f"g{n}@example.com", fields={"tier": "gold"})
    Customer.objects.create(external_id="s", email="s@example.com", fields={"tier": "silver"})
    document = kit.spec_document()
    gold = {"field": "customer.fields.tier", "op": "eq", "value": "gold"}
    daily = {"every": "day", "at": "10:00"}
    document["nodes"][0] = kit.flow_node("start", "schedule", recurrence=daily, audience={"rule": gold})
    flow = lifecycle.create_flow(document=document)
    page = sized
    open_flow(page, flow)
    page.get_by_role("button", name="Launch…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator(".lr-audience")).to_have_text("3 customers would enter now.")
    expect(dialog).to_contain_text("every day at 10:00")
    expect(dialog).to_contain_text("at most once every 1 week")
    shoot(page, "launch-review-audience", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert Flow.objects.get(pk=flow.pk).status == S.READY
    assert page.problems == []


def test_a_paused_flows_draft_launched_with_resume_goes_active(sized, live_server, superuser, templates):
    """The other answer of the resume question: the flow comes back active."""
    page = sized
    flow = live_flow_with_draft(paused=True)
    open_flow(page, flow)
    page.get_by_role("button", name="Launch draft…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("resume it: customers start entering again").check()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Launch", exact=True).click()
    expect(page.locator(".fe-state")).to_have_text("Launching")
    lifecycle.finish_launch(flow_id=flow.pk)
    expect(page.locator(".fe-state")).to_have_text("Active", timeout=10_000)
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    flow = Flow.objects.get(pk=flow.pk)
    assert (flow.status, flow.live_version.number) == (S.ACTIVE, 2)
    assert page.problems == []
