"""The canvas's server side: the configuration embedded in the Flow page, the
autosave endpoint (save_draft, validation errors back, refusals) and the
statistics endpoint."""

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from customers.models import Customer
from flows.admin.common import parse_period
from flows.models import Flow, FlowVersion, NodeStat
from maestra.audit.models import AuditEntry
from tests.flows import admin_kit as kit

S = Flow.Status
NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


def save_url(flow: Flow) -> str:
    return reverse("admin:flows_flow_canvas_save", args=[flow.pk])


def stats_url(flow: Flow) -> str:
    return reverse("admin:flows_flow_canvas_stats", args=[flow.pk])


def post_document(client, flow: Flow, document) -> tuple[int, dict]:
    body = document if isinstance(document, str) else json.dumps({"document": document})
    response = client.post(save_url(flow), body, content_type="application/json")
    return response.status_code, response.json()


def canvas_config(client, flow: Flow) -> dict:
    response = client.get(reverse("admin:flows_flow_change", args=[flow.pk]))
    assert response.status_code == 200
    return response.context["canvas_config"]


# --- The page ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_flow_page_embeds_the_draft_for_an_editable_canvas(admin_client, flow_in, templates):
    flow = flow_in(S.READY)

    config = canvas_config(admin_client, flow)
    page = admin_client.get(reverse("admin:flows_flow_change", args=[flow.pk])).content.decode()

    assert config["editable"] is True
    assert config["document"] == flow.draft.document
    assert config["version"] == {"number": 1, "state": "draft", "is_test": False}
    assert config["urls"]["save"] == save_url(flow)
    assert {t["slug"] for t in config["catalog"]["templates"]} == {"confirm", "reminder"}
    assert sorted(k["kind"] for k in config["kinds"]) == sorted(
        ["event", "schedule", "condition", "steps", "splitter", "wait", "wait_event", "ab_test", "limitation"]
    )
    assert 'id="flow-canvas-config"' in page
    assert "flows/vendor/drawflow/drawflow.min.js" in page
    assert 'type="module"' in page and "flows/canvas.js" in page
    assert 'value="launch" data-needs-valid' in page


@pytest.mark.django_db
def test_a_never_launched_invalid_draft_still_gets_launch_buttons_to_enable_later(admin_client, flow_in):
    flow = flow_in(S.DRAFT)

    page = admin_client.get(reverse("admin:flows_flow_change", args=[flow.pk])).content.decode()

    assert 'value="launch" data-needs-valid' in page
    assert 'value="start_test" data-needs-valid' in page
    errors = canvas_config(admin_client, flow)["errors"]
    # The draft's errors, each with its words for people (flows/plain_language.py).
    assert [{k: v for k, v in e.items() if k != "text"} for e in errors] == flow.draft.errors != []
    assert all(e["text"] for e in errors)


@pytest.mark.django_db
def test_a_live_flow_without_a_draft_opens_read_only_with_an_edit_button(admin_client, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)

    config = canvas_config(admin_client, flow)
    page = admin_client.get(reverse("admin:flows_flow_change", args=[flow.pk])).content.decode()

    assert config["editable"] is False
    assert config["version"]["state"] == "launched"
    assert config["document"] == flow.live_version.document
    assert "is launched and read-only" in page
    assert f'formaction="{reverse("admin:flows_flow_edit", args=[flow.pk])}"' in page


@pytest.mark.django_db
@pytest.mark.parametrize("status", [S.LAUNCHING, S.TESTING, S.ARCHIVED])
def test_a_draft_that_cannot_be_written_now_is_read_only(admin_client, flow_in, status):
    flow = flow_in(status)

    assert canvas_config(admin_client, flow)["editable"] is False


@pytest.mark.django_db
def test_the_flow_page_is_the_full_width_editor_without_djangos_save_row(admin_client, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)

    response = admin_client.get(reverse("admin:flows_flow_change", args=[flow.pk]))
    page = response.content.decode()

    assert response.context["is_nav_sidebar_enabled"] is False
    assert 'name="_save"' not in page and 'name="_addanother"' not in page and "deletelink" not in page
    assert 'name="_continue"' in page  # the details form below the editor keeps one Save
    # Lifecycle buttons post to their transition's URL; archiving asks first.
    pause = reverse("admin:flows_flow_transition", args=[flow.pk, "pause"])
    archive = reverse("admin:flows_flow_transition", args=[flow.pk, "archive"])
    assert f'value="pause" formaction="{pause}"' in page
    assert f'value="archive" formaction="{archive}" data-confirm="Archiving is permanent' in page
    # The settings panel's zones and the script's words come as JSON data.
    assert 'id="flow-timezones"' in page and 'id="flow-editor-strings"' in page
    zones = response.context["timezones"]
    assert "Europe/Berlin" in zones and zones == sorted(zones) and "localtime" not in zones
    assert response.context["editor_strings"]["valid"] == "No errors: the flow can be launched."
    assert 'id="fe-limit-mode"' in page and 'id="fe-timezone"' in page and 'id="fe-start-at"' in page


@pytest.mark.django_db
def test_a_never_launched_flow_can_be_deleted_with_its_versions_a_launched_one_cannot(admin_client, flow_in):
    ready = flow_in(S.READY)
    live = flow_in(S.ACTIVE, with_draft=False)
    assert (
        "Delete flow…"
        in admin_client.get(reverse("admin:flows_flow_change", args=[ready.pk])).content.decode()
    )
    assert (
        "Delete flow…"
        not in admin_client.get(reverse("admin:flows_flow_change", args=[live.pk])).content.decode()
    )

    response = admin_client.post(reverse("admin:flows_flow_delete", args=[ready.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Flow.objects.filter(pk=ready.pk).exists()
    assert not FlowVersion.objects.filter(flow_id=ready.pk).exists()
    # The audit log outlives the flow, and says who deleted it.
    actions = list(AuditEntry.objects.about(ready).order_by("pk").values_list("action", "data"))
    assert actions[-1] == ("flow.deleted", {"name": ready.name})
    assert AuditEntry.objects.about(ready).last().user.username == "admin"
    refused = admin_client.post(reverse("admin:flows_flow_delete", args=[live.pk]), {"post": "yes"})
    assert refused.status_code == 403
    assert Flow.objects.filter(pk=live.pk).exists()


# --- Autosave --------------------------------------------------------------------------


@pytest.mark.django_db
def test_autosave_stores_the_document_and_returns_its_errors(admin_client, flow_in, spec_document):
    flow = flow_in(S.READY)
    document = copy.deepcopy(spec_document)
    for index, node in enumerate(document["nodes"]):
        node["position"] = {"x": 40 + 300 * index, "y": 60}
    document["nodes"][4]["config"]["steps"][0]["template"] = ""

    status, body = post_document(admin_client, flow, document)

    assert status == 200
    assert body["version"] == 1
    assert body["status"] == S.DRAFT
    assert [(e["node"], e["field"]) for e in body["errors"]] == [("remind", "steps.0.template")]
    assert body["summary"] == "Draft · draft: 1 error"
    draft = Flow.objects.get(pk=flow.pk).draft
    assert draft.document == document  # the document as sent, positions and order kept
    assert draft.nodes.get(key="ask").position == {"x": 340, "y": 60}
    assert AuditEntry.objects.about(flow).filter(action="flow.draft_saved").exists()

    document["nodes"][4]["config"]["steps"][0]["template"] = "reminder"
    status, body = post_document(admin_client, flow, document)
    assert (status, body["errors"], body["status"]) == (200, [], S.READY)


@pytest.mark.django_db
def test_autosave_of_a_live_flow_writes_its_draft_not_the_live_version(admin_client, flow_in, spec_document):
    flow = flow_in(S.ACTIVE, with_draft=True)
    document = copy.deepcopy(spec_document)
    document["nodes"][2]["config"]["duration"] = "P2D"

    status, body = post_document(admin_client, flow, document)

    assert status == 200
    assert body["version"] == 2
    assert body["summary"] == "Active · live v1 · draft: valid"
    flow = Flow.objects.get(pk=flow.pk)
    assert flow.draft.document["nodes"][2]["config"]["duration"] == "P2D"
    assert flow.live_version.document["nodes"][2]["config"]["duration"] == "P1D"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"doc": {}}),
        json.dumps({"document": "a string"}),
        json.dumps({"document": {"format": "maestra.flow/2", "name": "x", "nodes": [], "edges": []}}),
        json.dumps({"document": {"format": "maestra.flow/1", "name": "x", "nodes": {}, "edges": []}}),
    ],
)
def test_autosave_refuses_a_malformed_body_with_400_and_writes_nothing(admin_client, flow_in, body):
    flow = flow_in(S.READY)
    before = flow.draft.document_json

    status, answer = post_document(admin_client, flow, body)

    assert status == 400
    assert answer["errors"] and all("message" in e for e in answer["errors"])
    assert Flow.objects.get(pk=flow.pk).draft.document_json == before


@pytest.mark.django_db
def test_autosave_never_creates_a_draft_of_a_live_flow(admin_client, flow_in, spec_document):
    flow = flow_in(S.ACTIVE, with_draft=False)

    status, body = post_document(admin_client, flow, spec_document)

    assert status == 409
    assert "press Edit" in body["message"]
    assert not FlowVersion.objects.filter(flow=flow, state=FlowVersion.State.DRAFT).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("status", [S.LAUNCHING, S.TESTING, S.ARCHIVED])
def test_autosave_is_refused_with_409_while_the_draft_cannot_be_written(
    admin_client, flow_in, spec_document, status
):
    flow = flow_in(status)
    spec_document["nodes"][2]["config"]["duration"] = "P5D"
    before = dict(FlowVersion.objects.filter(flow=flow).values_list("pk", "document_json"))

    code, body = post_document(admin_client, flow, spec_document)

    assert code == 409
    # Launching keeps its draft (being frozen); testing and archived have none.
    expected = "Cannot save a draft" if flow.draft is not None else "press Edit"
    assert expected in body["message"]
    assert dict(FlowVersion.objects.filter(flow=flow).values_list("pk", "document_json")) == before
    assert Flow.objects.get(pk=flow.pk).status == status


@pytest.mark.django_db
def test_autosave_needs_post_csrf_and_the_change_permission(flow_in, spec_document, django_user_model):
    flow = flow_in(S.READY)
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_flow"))
    client = Client()
    client.force_login(viewer)

    assert client.get(save_url(flow)).status_code == 405
    assert post_document(client, flow, spec_document)[0] == 403

    superuser = django_user_model.objects.create_superuser("root", password=None)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(superuser)
    assert (
        strict.post(
            save_url(flow), json.dumps({"document": spec_document}), content_type="application/json"
        ).status_code
        == 403
    )


@pytest.mark.django_db
def test_autosave_of_an_unknown_flow_is_a_404(admin_client, spec_document):
    response = admin_client.post(
        reverse("admin:flows_flow_canvas_save", args=[99999]),
        json.dumps({"document": spec_document}),
        content_type="application/json",
    )
    assert response.status_code == 404


# --- Statistics ---------------------------------------------------------------------------


def add_stat(flow: Flow, key: str, metric: str, count: int, hour: datetime, *, is_test: bool = False) -> None:
    NodeStat.objects.create(flow=flow, node_key=key, metric=metric, count=count, hour=hour, is_test=is_test)


@pytest.mark.django_db
def test_stats_count_the_period_per_node_with_percentages_of_the_start(admin_client, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)
    inside = datetime(2025, 6, 9, 10, tzinfo=UTC)
    add_stat(flow, "start", "entered", 10, inside)
    add_stat(flow, "start", "exit:next", 10, inside)
    add_stat(flow, "ask", "entered", 8, inside)
    add_stat(flow, "ask", "exit:next", 6, inside)
    add_stat(flow, "ask", "stop:relevance_expired", 2, inside)
    add_stat(flow, "still", "exit:yes", 3, inside)
    add_stat(flow, "start", "entered", 100, datetime(2025, 5, 1, tzinfo=UTC))  # before the period
    add_stat(flow, "start", "entered", 7, inside, is_test=True)  # test runs count apart
    customer = Customer.objects.create(external_id="c1", email="c1@example.com")
    kit.run_in(flow, customer, clock=NOW)
    kit.message_to(customer, flow=flow, status="sent", node_key="ask", created_at=inside)

    with time_machine.travel(NOW, tick=False):
        response = admin_client.get(stats_url(flow), {"from": "2025-06-03", "to": "2025-06-10"})

    assert response.status_code == 200
    data = response.json()
    assert data["start_node"] == "start"
    assert data["start_entered"] == 10
    nodes = data["nodes"]
    assert nodes["ask"]["entered"] == 8 and nodes["ask"]["entered_percent"] == 80.0
    assert nodes["ask"]["exits"] == [{"port": "next", "count": 6, "percent": 60.0}]
    assert nodes["ask"]["stops"] == [
        {
            "reason": "relevance_expired",
            "count": 2,
            "percent": 20.0,
            "text": "The steps were no longer relevant when their turn came, so nothing was sent.",
        }
    ]
    assert nodes["ask"]["messages"] == {"sent": 1}
    assert nodes["day"]["waiting_now"] == 1
    assert nodes["still"]["exits"] == [{"port": "yes", "count": 3, "percent": 30.0}]
    assert nodes["remind"]["entered"] == 0

    test_runs = admin_client.get(
        stats_url(flow), {"from": "2025-06-03", "to": "2025-06-10", "test": "1"}
    ).json()
    assert test_runs["start_entered"] == 7
    assert test_runs["nodes"]["day"]["waiting_now"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params", [{"from": "yesterday"}, {"from": "2025-06-10", "to": "2025-06-01"}, {"to": "2025-13-01"}]
)
def test_stats_refuse_a_bad_period(admin_client, flow_in, params):
    flow = flow_in(S.ACTIVE, with_draft=False)

    response = admin_client.get(stats_url(flow), params)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "period"


def test_the_period_is_whole_days_with_the_end_day_included_and_7_days_by_default():
    since, until = parse_period({"from": "2025-06-01", "to": "2025-06-03"})
    assert (since, until) == (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 4, tzinfo=UTC))
    assert parse_period({}, now=NOW) == (NOW - timedelta(days=7), NOW)
    assert parse_period({"from": "2025-06-09T08:30:00+02:00"}, now=NOW)[0] == datetime(
        2025, 6, 9, 6, 30, tzinfo=UTC
    )


@pytest.mark.django_db
def test_stats_need_the_view_permission(flow_in, django_user_model):
    flow = flow_in(S.ACTIVE, with_draft=False)
    nobody = django_user_model.objects.create_user("staff", is_staff=True)
    client = Client()
    client.force_login(nobody)

    assert client.get(stats_url(flow)).status_code == 403
    nobody.user_permissions.add(Permission.objects.get(codename="view_flow"))
    assert client.get(stats_url(flow)).status_code == 200
