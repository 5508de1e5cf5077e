"""Flows through the API: documents in and out, drafts, the lifecycle with
its 409s, versions, rename, audience preview."""

import copy
import json

import pytest

from customers.models import Customer, Segment, SegmentMembership
from flows.engine.tick import tick
from flows.models import Flow, FlowVersion, LaunchRecord

SCHEDULE_DOCUMENT = {
    "format": "maestra.flow/1",
    "name": "Daily digest",
    "launch_limit": {"mode": "once"},
    "nodes": [
        {
            "key": "start",
            "kind": "schedule",
            "config": {
                "recurrence": {"every": "day", "at": "10:00"},
                "timezone": "flow",
                "audience": {"segment": "newsletter", "rule": None},
            },
        },
        {"key": "pause", "kind": "wait", "config": {"mode": "fixed", "duration": "PT1H"}},
    ],
    "edges": [{"from": "start", "to": "pause"}],
}


def _create(api, document) -> dict:
    response = api.post("/api/v1/flows", document, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _active(api, document) -> int:
    flow_id = _create(api, document)["id"]
    assert api.post(f"/api/v1/flows/{flow_id}/launch").status_code == 202
    tick(deliver=False)
    assert Flow.objects.get(pk=flow_id).status == "active"
    return flow_id


# --- create, read, list ------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_a_valid_flow_ready_to_launch(api, templates, spec_document):
    body = _create(api, spec_document)
    assert body["status"] == "ready"
    assert body["errors"] == []
    assert body["draft"]["version"] == 1
    assert body["draft"]["valid"] is True
    assert body["live_version"] is None
    assert body["name"] == "Subscription confirmation"


@pytest.mark.django_db
def test_it_saves_a_document_with_semantic_errors_as_an_invalid_draft(api, templates, invalid_document):
    body = _create(api, invalid_document)
    assert body["status"] == "draft"
    assert body["draft"]["valid"] is False
    assert any(error["node"] == "ask" and "no-such-template" in error["message"] for error in body["errors"])
    assert Flow.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "maestra.flow/2"}, "format"),
        ({"format": None}, "format"),
        ({"name": 5}, "name"),
        ({"name": ""}, "name"),
        ({"nodes": {"key": "start"}}, "nodes"),
        ({"edges": "start->ask"}, "edges"),
        ({"colour": "blue"}, "colour"),
        ({"nodes": [{"kind": "event"}]}, "nodes.0.key"),
        ({"nodes": [{"key": "a b", "kind": "event"}]}, "nodes.0.key"),
    ],
)
def test_it_refuses_a_malformed_document_with_400_and_stores_nothing(api, spec_document, change, field):
    document = {**spec_document, **change}
    if change.get("format", "") is None:
        document.pop("format")
    response = api.post("/api/v1/flows", document, format="json")
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_it_lists_flows_newest_first_filtered_by_status_and_name_with_pagination(api, flow_in):
    ready = flow_in("ready")
    active = flow_in("active")
    paused = flow_in("paused")
    draft = flow_in("draft")
    listed = api.get("/api/v1/flows").json()
    assert listed["count"] == 4
    assert [row["id"] for row in listed["results"]] == [draft.pk, paused.pk, active.pk, ready.pk]
    by_status = api.get("/api/v1/flows", {"status": ["active", "paused"]}).json()
    assert sorted(row["id"] for row in by_status["results"]) == [active.pk, paused.pk]
    assert by_status["results"][0]["live_version"] == 1
    assert by_status["results"][0]["draft"]["version"] == 2  # flow_in gives live flows a draft
    assert api.get("/api/v1/flows", {"name": "CONFIRMATION"}).json()["count"] == 4
    assert api.get("/api/v1/flows", {"name": "nothing like it"}).json()["count"] == 0
    page = api.get("/api/v1/flows", {"page_size": 3, "page": 2}).json()
    assert len(page["results"]) == 1 and page["previous"]


@pytest.mark.django_db
def test_it_lists_flows_in_a_constant_number_of_queries(api, flow_in, django_assert_max_num_queries):
    for status in ("ready", "active", "paused", "draft", "archived"):
        flow_in(status)
    with django_assert_max_num_queries(8):
        assert api.get("/api/v1/flows").json()["count"] == 5


@pytest.mark.django_db
def test_it_reads_a_flow_and_answers_404_for_an_unknown_one(api, flow_in):
    flow = flow_in("active")
    body = api.get(f"/api/v1/flows/{flow.pk}").json()
    assert (body["id"], body["status"], body["live_version"]) == (flow.pk, "active", 1)
    assert api.get(f"/api/v1/flows/{flow.pk + 100}").status_code == 404


# --- documents and drafts -------------------------------------------------------------


@pytest.mark.django_db
def test_it_exports_exactly_the_document_that_came_in(api, templates, spec_document):
    flow_id = _create(api, spec_document)["id"]
    exported = api.get(f"/api/v1/flows/{flow_id}/document")
    assert exported.status_code == 200
    assert exported.json() == spec_document
    assert list(exported.json()) == list(spec_document)  # key order too
    assert api.get(f"/api/v1/flows/{flow_id}/document", {"version": "1"}).json() == spec_document
    assert api.get(f"/api/v1/flows/{flow_id}/document", {"version": "draft"}).json() == spec_document


@pytest.mark.django_db
def test_it_exports_the_live_version_by_default_and_any_version_by_number(api, flow_in, spec_document):
    flow = flow_in("active")
    changed = copy.deepcopy(spec_document)
    changed["name"] = "Changed"
    assert api.put(f"/api/v1/flows/{flow.pk}/draft", changed, format="json").status_code == 200
    assert api.get(f"/api/v1/flows/{flow.pk}/document").json()["name"] == "Subscription confirmation"
    assert api.get(f"/api/v1/flows/{flow.pk}/document", {"version": "draft"}).json()["name"] == "Changed"
    assert api.get(f"/api/v1/flows/{flow.pk}/document", {"version": "live"}).json() == spec_document


@pytest.mark.django_db
@pytest.mark.parametrize(("version", "code"), [("7", 404), ("live", 404), ("latest", 400), ("-1", 400)])
def test_it_answers_a_missing_or_bad_version(api, flow_in, version, code):
    flow = flow_in("ready")
    response = api.get(f"/api/v1/flows/{flow.pk}/document", {"version": version})
    assert response.status_code == code
    assert response.json()["errors"][0]["field"] == "version"


@pytest.mark.django_db
def test_it_replaces_the_draft_and_returns_its_errors(api, flow_in, invalid_document, spec_document):
    flow = flow_in("ready")
    body = api.put(f"/api/v1/flows/{flow.pk}/draft", invalid_document, format="json").json()
    assert body["status"] == "draft"
    assert body["errors"] and body["errors"][0]["node"] == "ask"
    body = api.put(f"/api/v1/flows/{flow.pk}/draft", spec_document, format="json").json()
    assert (body["status"], body["errors"]) == ("ready", [])
    assert FlowVersion.objects.filter(flow=flow).count() == 1


@pytest.mark.django_db
def test_it_creates_the_draft_of_a_live_flow_that_has_none(api, flow_in, invalid_document):
    flow = flow_in("active", with_draft=False)
    body = api.put(f"/api/v1/flows/{flow.pk}/draft", invalid_document, format="json").json()
    assert body["status"] == "active"
    assert body["live_version"] == 1
    assert body["draft"]["version"] == 2
    assert body["draft"]["valid"] is False


@pytest.mark.django_db
def test_it_refuses_a_malformed_draft_without_creating_one(api, flow_in):
    flow = flow_in("active", with_draft=False)
    response = api.put(f"/api/v1/flows/{flow.pk}/draft", {"format": "nope"}, format="json")
    assert response.status_code == 400
    assert flow.versions.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["archived", "testing", "launching"])
def test_it_refuses_to_write_the_draft_of_a_flow_that_cannot_have_one_now(
    api, flow_in, spec_document, status
):
    flow = flow_in(status)
    response = api.put(f"/api/v1/flows/{flow.pk}/draft", spec_document, format="json")
    assert response.status_code == 409
    assert status in response.json()["errors"][0]["message"]


@pytest.mark.django_db
def test_it_deletes_the_draft_of_a_live_flow_only(api, flow_in):
    live = flow_in("active")
    assert api.delete(f"/api/v1/flows/{live.pk}/draft").status_code == 204
    assert live.versions.count() == 1
    again = api.delete(f"/api/v1/flows/{live.pk}/draft")
    assert again.status_code == 409
    assert "no draft" in again.json()["errors"][0]["message"]
    never = flow_in("ready")
    refused = api.delete(f"/api/v1/flows/{never.pk}/draft")
    assert refused.status_code == 409
    assert "never launched" in refused.json()["errors"][0]["message"]


# --- lifecycle ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_launches_a_flow_and_the_tick_finishes_the_launch(api, flow_in):
    flow = flow_in("ready")
    response = api.post(f"/api/v1/flows/{flow.pk}/launch")
    assert response.status_code == 202
    assert response.json()["status"] == "launching"
    tick(deliver=False)
    body = api.get(f"/api/v1/flows/{flow.pk}").json()
    assert (body["status"], body["live_version"], body["draft"]) == ("active", 1, None)


@pytest.mark.django_db
def test_it_refuses_to_launch_a_draft_with_errors_listing_them(api, flow_in):
    flow = flow_in("draft")
    response = api.post(f"/api/v1/flows/{flow.pk}/launch")
    assert response.status_code == 409
    errors = response.json()["errors"]
    assert errors[0]["field"] == "status" and "cannot be launched" in errors[0]["message"]
    assert any(error.get("node") == "ask" for error in errors[1:])
    assert Flow.objects.get(pk=flow.pk).status == "draft"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("archived", "launch"),
        ("launching", "launch"),
        ("ready", "pause"),
        ("draft", "resume"),
        ("active", "resume"),
        ("paused", "pause"),
        ("archived", "archive"),
        ("active", "test"),
        ("ready", "stop-test"),
    ],
)
def test_it_refuses_an_illegal_lifecycle_action_with_409_and_the_reason(api, flow_in, status, action):
    flow = flow_in(status)
    response = api.post(f"/api/v1/flows/{flow.pk}/{action}")
    assert response.status_code == 409
    message = response.json()["errors"][0]["message"]
    assert f"is {status}" in message and "allowed from" in message
    assert Flow.objects.get(pk=flow.pk).status == status


@pytest.mark.django_db
def test_it_pauses_resumes_tests_and_archives(api, flow_in):
    active = flow_in("active")
    assert api.post(f"/api/v1/flows/{active.pk}/pause").json()["status"] == "paused"
    assert api.post(f"/api/v1/flows/{active.pk}/resume").json()["status"] == "active"
    assert api.post(f"/api/v1/flows/{active.pk}/archive").json()["status"] == "archived"
    ready = flow_in("ready")
    assert api.post(f"/api/v1/flows/{ready.pk}/test").json()["status"] == "testing"
    assert api.post(f"/api/v1/flows/{ready.pk}/stop-test").json()["status"] == "ready"


@pytest.mark.django_db
def test_it_duplicates_a_flow(api, flow_in):
    flow = flow_in("active")
    response = api.post(f"/api/v1/flows/{flow.pk}/duplicate")
    assert response.status_code == 201
    copy_body = response.json()
    assert copy_body["id"] != flow.pk
    assert copy_body["name"] == "Subscription confirmation (copy)"
    assert copy_body["status"] == "ready"
    assert api.get(f"/api/v1/flows/{copy_body['id']}/document").json()["name"] == copy_body["name"]


@pytest.mark.django_db
def test_it_records_the_staff_user_who_acted_through_the_browsable_api(flow_in, django_user_model):
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIClient

    staff = django_user_model.objects.create_user("boss", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="change_flow"))
    client = APIClient(enforce_csrf_checks=False)
    client.force_login(staff)
    flow = flow_in("active")
    assert client.post(f"/api/v1/flows/{flow.pk}/pause").status_code == 200
    assert flow.audit_entries.order_by("-pk").first().user == staff


@pytest.mark.django_db
def test_it_lists_the_version_history_newest_first(api, flow_in):
    flow = flow_in("active")  # v1 live, v2 draft
    body = api.get(f"/api/v1/flows/{flow.pk}/versions").json()
    assert body["count"] == 2
    assert [(v["number"], v["state"], v["is_live"]) for v in body["results"]] == [
        (2, "draft", False),
        (1, "launched", True),
    ]
    assert body["results"][1]["launched_at"]


# --- rename -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_renames_and_describes_a_flow_and_its_draft(api, flow_in):
    flow = flow_in("active")
    response = api.patch(
        f"/api/v1/flows/{flow.pk}", {"name": "Double opt-in", "description": "GDPR"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["description"]) == ("Double opt-in", "GDPR")
    draft = api.get(f"/api/v1/flows/{flow.pk}/document", {"version": "draft"}).json()
    assert (draft["name"], draft["description"]) == ("Double opt-in", "GDPR")
    # The launched version is frozen.
    assert api.get(f"/api/v1/flows/{flow.pk}/document").json()["name"] == "Subscription confirmation"


@pytest.mark.django_db
def test_it_renames_an_archived_flow_without_touching_versions(api, flow_in):
    flow = flow_in("archived")
    assert api.patch(f"/api/v1/flows/{flow.pk}", {"name": "Old"}, format="json").json()["name"] == "Old"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"name": "x" * 201}, "name"), ({"status": "active"}, "status")],
)
def test_it_refuses_a_bad_rename(api, flow_in, body, field):
    flow = flow_in("ready")
    response = api.patch(f"/api/v1/flows/{flow.pk}", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert Flow.objects.get(pk=flow.pk).name == "Subscription confirmation"


# --- audience preview --------------------------------------------------------------------


@pytest.fixture
def newsletter(db):
    segment = Segment.objects.create(slug="newsletter", name="Newsletter")
    customers = [
        Customer.objects.create(external_id=f"c-{n}", fields={"tier": "gold" if n < 2 else "basic"})
        for n in range(5)
    ]
    SegmentMembership.objects.bulk_create(
        SegmentMembership(segment=segment, customer=c) for c in customers[:3]
    )
    return customers


@pytest.mark.django_db
def test_it_previews_the_audience_of_a_schedule_start(api, newsletter):
    flow_id = _create(api, SCHEDULE_DOCUMENT)["id"]
    body = api.get(f"/api/v1/flows/{flow_id}/audience-preview").json()
    assert body == {
        "source": "schedule",
        "version": 1,
        "matching": 3,
        "blocked_by_launch_limit": 0,
        "would_enter": 3,
    }


@pytest.mark.django_db
def test_it_counts_customers_the_launch_limit_blocks(api, newsletter):
    flow_id = _active(api, SCHEDULE_DOCUMENT)
    LaunchRecord.objects.create(flow_id=flow_id, customer=newsletter[0], launches=1)
    body = api.get(f"/api/v1/flows/{flow_id}/audience-preview").json()
    assert (body["matching"], body["blocked_by_launch_limit"], body["would_enter"]) == (3, 1, 2)


@pytest.mark.django_db
def test_it_previews_a_rule(api, newsletter, flow_in):
    flow = flow_in("ready")
    rule = json.dumps({"field": "customer.fields.tier", "op": "eq", "value": "gold"})
    body = api.get(f"/api/v1/flows/{flow.pk}/audience-preview", {"rule": rule}).json()
    assert (body["source"], body["matching"]) == ("rule", 2)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "rule",
    ["{not json", json.dumps({"field": "event.total", "op": "gt", "value": 1}), json.dumps({"op": "eq"})],
)
def test_it_refuses_a_bad_rule(api, flow_in, rule):
    flow = flow_in("ready")
    response = api.get(f"/api/v1/flows/{flow.pk}/audience-preview", {"rule": rule})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith("rule")


@pytest.mark.django_db
def test_it_cannot_preview_an_event_start(api, flow_in):
    flow = flow_in("ready")
    response = api.get(f"/api/v1/flows/{flow.pk}/audience-preview")
    assert response.status_code == 409
    assert response.json()["errors"][0]["node"] == "start"


@pytest.mark.django_db
def test_it_reports_an_audience_segment_that_does_not_exist(api):
    flow_id = _create(api, SCHEDULE_DOCUMENT)["id"]  # an invalid draft: the segment is missing
    response = api.get(f"/api/v1/flows/{flow_id}/audience-preview")
    assert response.status_code == 409
    assert "newsletter" in response.json()["errors"][0]["message"]
