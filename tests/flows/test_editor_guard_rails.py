"""The flow editor's guard rails and versions (issue #14, items 4, 6, 8):
optimistic concurrency of drafts (a stale autosave is a 409 with the
current revision, never an overwrite), the launch review (audience through
the preview selector, limit, schedule, changes against live), launching a
paused flow that stays paused or resumes, the diff of a draft against the
live version by node key, and the status endpoint the page polls."""

import copy
import json

import pytest
from django.urls import reverse

from customers.models import Customer, Segment
from flows import lifecycle
from flows.models import Flow
from flows.version_diff import diff_documents
from maestra.audit.models import AuditEntry

S = Flow.Status


def save(client, flow, document, revision=None):
    body = {"document": document}
    if revision is not None:
        body["revision"] = revision
    response = client.post(
        reverse("admin:flows_flow_canvas_save", args=[flow.pk]),
        json.dumps(body),
        content_type="application/json",
    )
    return response.status_code, response.json()


def config(client, flow):
    return client.get(reverse("admin:flows_flow_change", args=[flow.pk])).context["canvas_config"]


# --- Optimistic concurrency -----------------------------------------------------------


@pytest.mark.django_db
def test_a_stale_autosave_is_refused_with_409_and_never_overwrites(admin_client, flow_in):
    flow = flow_in(S.READY)
    loaded = config(admin_client, flow)["revision"]
    document = Flow.objects.get(pk=flow.pk).draft.document

    first = copy.deepcopy(document)
    first["name"] = "Tab one"
    status, body = save(admin_client, flow, first, revision=loaded)
    assert status == 200
    assert body["revision"] == loaded + 1

    second = copy.deepcopy(document)
    second["name"] = "Tab two, stale"
    status, body = save(admin_client, flow, second, revision=loaded)
    assert status == 409
    assert body["code"] == "draft_conflict"
    assert body["revision"] == loaded + 1
    assert body["errors"][0]["field"] == "revision"
    draft = Flow.objects.get(pk=flow.pk).draft
    assert draft.document["name"] == "Tab one"
    assert draft.revision == loaded + 1

    # With the current revision the save goes through.
    status, body = save(admin_client, flow, second, revision=loaded + 1)
    assert status == 200 and body["revision"] == loaded + 2


@pytest.mark.django_db
@pytest.mark.parametrize("revision", ["3", -1, True, 1.5])
def test_a_malformed_revision_is_a_400_naming_the_field(admin_client, flow_in, revision):
    flow = flow_in(S.READY)
    status, body = save(admin_client, flow, Flow.objects.get(pk=flow.pk).draft.document, revision=revision)
    assert status == 400
    assert body["errors"][0]["field"] == "revision"


@pytest.mark.django_db
def test_save_draft_service_checks_the_expected_revision(flow_in):
    flow = flow_in(S.READY)
    draft = flow.draft
    with pytest.raises(lifecycle.DraftConflict) as refused:
        lifecycle.save_draft(flow=flow, document=draft.document, expected_revision=draft.revision - 1)
    assert refused.value.revision == draft.revision
    saved = lifecycle.save_draft(flow=flow, document=draft.document, expected_revision=draft.revision)
    assert saved.revision == draft.revision + 1


# --- Launch review and launching a paused flow --------------------------------------------


def review(client, flow):
    response = client.get(reverse("admin:flows_flow_launch_review", args=[flow.pk]))
    return response.status_code, response.json()


@pytest.mark.django_db
def test_the_launch_review_of_an_event_flow(admin_client, flow_in):
    flow = flow_in(S.READY)
    status, body = review(admin_client, flow)
    assert status == 200
    assert body["valid"] is True and body["paused"] is False
    assert "subscription_changed" in body["start"]
    assert body["audience"]["available"] is False
    assert "as their events arrive" in body["audience"]["text"]
    assert "once every 1 week" in body["launch_limit"]
    assert body["schedule"].startswith("From the launch")
    assert body["live_version"] is None and body["changes"] == []


@pytest.mark.django_db
def test_the_launch_review_counts_a_schedule_audience_with_the_preview_selector(
    admin_client, launched, spec_document, templates
):
    Segment.objects.create(slug="gold", name="Gold")
    for n in range(3):
        Customer.objects.create(external_id=f"c{n}", email=f"c{n}@example.com", fields={"tier": "gold"})
    Customer.objects.create(external_id="x", email="x@example.com", fields={"tier": "silver"})
    document = copy.deepcopy(spec_document)
    gold = {"rule": {"field": "customer.fields.tier", "op": "eq", "value": "gold"}}
    schedule = {"recurrence": {"every": "day", "at": "10:00"}, "audience": gold}
    document["nodes"][0] = {"key": "start", "kind": "schedule", "config": schedule}
    flow = launched(document)
    lifecycle.edit_flow(flow=flow)
    changed = copy.deepcopy(document)
    changed["nodes"] = [n for n in changed["nodes"] if n["key"] != "remind"]
    changed["edges"] = [e for e in changed["edges"] if e["to"] != "remind"]
    changed["nodes"][1]["title"] = "Ask nicely"
    lifecycle.save_draft(flow=flow, document=changed)

    status, body = review(admin_client, flow)

    assert status == 200
    assert body["audience"]["available"] is True
    assert body["audience"]["would_enter"] == 3
    assert "3 customers would enter now" in body["audience"]["text"]
    assert "every day at 10:00" in body["start"]
    assert body["live_version"] == 1
    assert body["diff"]["removed"] == [{"key": "remind", "kind": "steps", "title": ""}]
    assert [c["key"] for c in body["diff"]["changed"]] == ["ask", "still"]
    assert any(line.startswith("Removed: remind") for line in body["changes"])


@pytest.mark.django_db
@pytest.mark.parametrize(("resume", "expected"), [("0", S.PAUSED), ("1", S.ACTIVE)])
def test_launching_the_draft_of_a_paused_flow_does_what_was_chosen(admin_client, flow_in, resume, expected):
    flow = flow_in(S.PAUSED)
    response = admin_client.post(reverse("admin:flows_flow_launch", args=[flow.pk]), {"resume": resume})
    assert response.status_code == 302
    assert Flow.objects.get(pk=flow.pk).status == S.LAUNCHING
    flow = lifecycle.finish_launch(flow_id=flow.pk)
    assert flow.status == expected
    assert flow.live_version.number == 2
    launched = AuditEntry.objects.about(flow).filter(action="flow.launched").latest("pk")
    assert launched.data.get("paused", False) is (expected == S.PAUSED)


@pytest.mark.django_db
def test_the_launch_review_needs_the_change_permission(client, django_user_model, flow_in):
    flow = flow_in(S.READY)
    user = django_user_model.objects.create_user("viewer", is_staff=True)
    client.force_login(user)
    status, _body = review(client, flow)
    assert status in (403, 404)
    assert client.post(reverse("admin:flows_flow_launch", args=[flow.pk])).status_code in (302, 403)
    assert Flow.objects.get(pk=flow.pk).status == S.READY


# --- Version diff -----------------------------------------------------------------------


def test_the_diff_matches_nodes_by_key_and_ignores_positions():
    before = {
        "name": "A",
        "nodes": [
            {"key": "s", "kind": "event", "config": {"event_type": "x"}, "position": {"x": 0, "y": 0}},
            {"key": "w", "kind": "wait", "config": {"duration": "P1D"}},
            {"key": "gone", "kind": "wait", "config": {"duration": "P2D"}},
        ],
        "edges": [{"from": "s", "to": "w"}, {"from": "w", "to": "gone"}],
    }
    after = {
        "name": "A",
        "timezone": "Europe/Paris",
        "nodes": [
            {"key": "s", "kind": "event", "config": {"event_type": "x"}, "position": {"x": 400, "y": 90}},
            {"key": "w", "kind": "wait", "config": {"duration": "P1D"}},
            {"key": "new", "kind": "wait", "config": {"duration": "PT1H"}, "title": "Hour"},
        ],
        "edges": [{"from": "s", "to": "w"}, {"from": "w", "to": "new"}],
    }
    diff = diff_documents(before=before, after=after)
    assert diff["added"] == ["new"]
    assert diff["removed"] == [{"key": "gone", "kind": "wait", "title": ""}]
    assert diff["changed"] == [{"key": "w", "what": ["lines"]}]
    assert diff["settings"] == ["timezone"]


@pytest.mark.django_db
def test_the_canvas_of_a_draft_of_a_live_flow_carries_its_diff(admin_client, flow_in):
    flow = flow_in(S.ACTIVE)
    document = Flow.objects.get(pk=flow.pk).draft.document
    assert config(admin_client, flow)["diff"]["changed"] == []
    document["nodes"][1]["config"]["relevance"] = "P2D"
    status, body = save(admin_client, flow, document)
    assert status == 200
    assert body["diff"]["changed"] == [{"key": "ask", "what": ["settings"]}]
    assert config(admin_client, flow)["diff"]["against"] == 1


# --- Live status --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_status_endpoint_follows_a_launch(admin_client, flow_in, django_assert_max_num_queries):
    flow = flow_in(S.LAUNCHING)
    url = reverse("admin:flows_flow_status", args=[flow.pk])
    assert config(admin_client, flow)["transient"] is True
    with django_assert_max_num_queries(8):
        body = admin_client.get(url).json()
    assert body == {
        "status": "launching",
        "label": "Launching",
        "transient": True,
        "live_version": None,
        "poll_seconds": 3,
    }
    lifecycle.finish_launch(flow_id=flow.pk)
    body = admin_client.get(url).json()
    assert body["status"] == "active" and body["transient"] is False and body["live_version"] == 1
    assert admin_client.post(url).status_code == 405
    assert admin_client.get(reverse("admin:flows_flow_status", args=[987654])).status_code == 404


@pytest.mark.django_db
def test_a_version_opens_read_only_on_the_canvas_with_its_diff(admin_client, flow_in):
    flow = flow_in(S.ACTIVE)
    document = Flow.objects.get(pk=flow.pk).draft.document
    document["nodes"] = [n for n in document["nodes"] if n["key"] != "remind"]
    document["edges"] = [e for e in document["edges"] if e["to"] != "remind"]
    lifecycle.save_draft(flow=flow, document=document)

    response = admin_client.get(reverse("admin:flows_flow_version", args=[flow.pk, 2]))
    page = response.content.decode()
    config = response.context["canvas_config"]
    assert config["editable"] is False
    assert config["version"]["number"] == 2
    assert config["document"]["nodes"] == document["nodes"]
    assert config["diff"]["removed"][0]["key"] == "remind"
    assert 'id="flow-canvas"' in page and "flows/canvas.js" in page

    live = admin_client.get(reverse("admin:flows_flow_version", args=[flow.pk, 1])).context["canvas_config"]
    assert live["diff"] is None and live["editable"] is False


@pytest.mark.django_db
def test_the_launch_review_says_the_goal_and_exit_and_the_diff_names_them(admin_client, flow_in):
    flow = flow_in(S.ACTIVE)
    document = Flow.objects.get(pk=flow.pk).draft.document
    status, body = review(admin_client, flow)
    assert body["goal"].startswith("No goal") and body["exit"].startswith("No exit criteria")
    document["goal"] = {
        "event_type": "order_created",
        "filter": None,
        "window": "P7D",
        "value_field": "event.total",
    }
    document["exit"] = {
        "event_type": "unsubscribed",
        "filter": {"field": "event.list", "op": "eq", "value": "all"},
    }
    assert save(admin_client, flow, document)[0] == 200
    status, body = review(admin_client, flow)
    assert status == 200
    assert body["goal"] == (
        "A customer converts with an event “order_created” within 7 days of entering (value: event.total)."
    )
    assert (
        body["exit"]
        == "A customer leaves the flow at once when an event “unsubscribed” arrives that matches its filter."
    )
    assert body["diff"]["settings"] == ["goal", "exit"]
