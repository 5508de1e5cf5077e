"""The Flow page of the admin: transitions go through the lifecycle services,
the draft's document is edited as validated JSON, versions are read-only."""

import json

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from flows import lifecycle
from flows.models import Flow, FlowVersion
from maestra.audit.models import AuditEntry

S = Flow.Status


@pytest.fixture
def admin_user(db, django_user_model):
    # pytest-django's admin_user hashes a password (slow PBKDF2); the test
    # client logs in with force_login, so no usable password is needed.
    return django_user_model.objects.create_superuser("admin", "admin@example.com", password=None)


def change_url(flow: Flow) -> str:
    return reverse("admin:flows_flow_change", args=[flow.pk])


def form_data(flow: Flow, **overrides) -> dict:
    """What the change form posts as it is rendered (draft document included)."""
    flow = Flow.objects.get(pk=flow.pk)
    data = {"name": flow.name, "description": flow.description}
    draft = flow.draft
    if draft is not None:
        data["draft_document"] = draft.document_json
    data.update(overrides)
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def press(client, flow: Flow, transition: str):
    return client.post(change_url(flow), form_data(flow, _fsm_transition_to=transition), follow=True)


def actions_of(flow: Flow) -> list[str]:
    return list(AuditEntry.objects.about(flow).order_by("pk").values_list("action", flat=True))


# --- List and change pages ------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_flows_with_status_live_version_and_draft_state(admin_client, flow_in):
    active = flow_in(S.ACTIVE, with_draft=True)
    invalid = flow_in(S.DRAFT)

    response = admin_client.get(reverse("admin:flows_flow_changelist"))

    assert response.status_code == 200
    rows = {row.pk: row for row in response.context["cl"].result_list}
    admin = response.context["cl"].model_admin
    assert admin.live_version_number(rows[active.pk]) == "v1"
    assert admin.draft_info(rows[active.pk]) == "v2 · valid"
    assert admin.live_version_number(rows[invalid.pk]) == "—"
    assert admin.draft_info(rows[invalid.pk]) == "v1 · 1 error"
    assert "v2 · valid" in response.content.decode()


@pytest.mark.django_db
def test_it_filters_flows_by_status_and_searches_by_name(admin_client, flow_in):
    active = flow_in(S.ACTIVE, with_draft=False)
    ready = flow_in(S.READY)
    Flow.objects.filter(pk=ready.pk).update(name="Birthday greetings")

    by_status = admin_client.get(reverse("admin:flows_flow_changelist"), {"status__exact": "active"})
    by_name = admin_client.get(reverse("admin:flows_flow_changelist"), {"q": "birthday"})

    assert [f.pk for f in by_status.context["cl"].result_list] == [active.pk]
    assert [f.pk for f in by_name.context["cl"].result_list] == [ready.pk]


@pytest.mark.django_db
def test_the_flow_list_runs_the_same_queries_for_1_and_20_flows(
    admin_client, flow_in, django_assert_max_num_queries
):
    flow_in(S.ACTIVE, with_draft=True)
    url = reverse("admin:flows_flow_changelist")
    with django_assert_max_num_queries(12) as one:
        assert admin_client.get(url).status_code == 200

    for index in range(19):
        flow_in(S.ACTIVE if index % 2 else S.DRAFT)
    assert Flow.objects.count() == 20
    with django_assert_max_num_queries(12) as twenty:
        assert admin_client.get(url).status_code == 200
    assert len(twenty.captured_queries) == len(one.captured_queries)


@pytest.mark.django_db
@pytest.mark.parametrize("status", [S.DRAFT, S.READY, S.LAUNCHING, S.ACTIVE, S.PAUSED, S.TESTING, S.ARCHIVED])
def test_it_renders_the_change_page_in_every_status(admin_client, flow_in, status):
    flow = flow_in(status)

    response = admin_client.get(change_url(flow))

    assert response.status_code == 200
    assert flow.get_status_display() in response.content.decode()


@pytest.mark.django_db
def test_it_shows_the_status_and_the_draft_validity_of_a_live_flow(admin_client, flow_in, invalid_document):
    flow = flow_in(S.ACTIVE, with_draft=True)
    summary = admin_client.get(change_url(flow)).context["adminform"].form.instance
    admin = admin_client.get(change_url(flow)).context["adminform"].model_admin
    assert admin.state_summary(summary) == "Active · live v1 · draft: valid"

    lifecycle.save_draft(flow=flow, document=invalid_document)
    flow = Flow.objects.get(pk=flow.pk)
    assert admin.state_summary(flow) == "Active · live v1 · draft: 1 error"
    assert "draft: 1 error" in admin_client.get(change_url(flow)).content.decode()


# --- Transition buttons ------------------------------------------------------------


@pytest.mark.django_db
def test_the_buttons_launch_pause_resume_and_archive_through_the_services(admin_client, admin_user, flow_in):
    flow = flow_in(S.READY)
    page = admin_client.get(change_url(flow)).content.decode()
    assert 'name="_fsm_transition_to" value="launch"' in page

    response = press(admin_client, flow, "launch")
    assert response.status_code == 200
    flow = Flow.objects.get(pk=flow.pk)
    assert flow.status == S.LAUNCHING
    assert any("Launch started" in m for m in messages_of(response))
    lifecycle.finish_launch(flow_id=flow.pk)

    press(admin_client, flow, "pause")
    assert Flow.objects.get(pk=flow.pk).status == S.PAUSED
    press(admin_client, flow, "resume")
    assert Flow.objects.get(pk=flow.pk).status == S.ACTIVE
    press(admin_client, flow, "archive")
    assert Flow.objects.get(pk=flow.pk).status == S.ARCHIVED

    assert actions_of(flow)[-5:] == [
        "flow.launch_requested",
        "flow.launched",
        "flow.paused",
        "flow.resumed",
        "flow.archived",
    ]
    # The clicks are attributed to the admin user (the launch too, via its request).
    entries = AuditEntry.objects.about(flow).filter(action__in=["flow.launch_requested", "flow.paused"])
    assert {entry.user_id for entry in entries} == {admin_user.pk}
    assert FlowVersion.objects.get(flow=flow, number=1).launched_by_id == admin_user.pk


@pytest.mark.django_db
def test_a_test_launch_and_stop_go_through_the_services(admin_client, flow_in):
    flow = flow_in(S.READY)

    press(admin_client, flow, "start_test")
    assert Flow.objects.get(pk=flow.pk).status == S.TESTING
    press(admin_client, flow, "stop_test")
    assert Flow.objects.get(pk=flow.pk).status == S.READY
    assert actions_of(flow)[-2:] == ["flow.test_started", "flow.test_stopped"]


@pytest.mark.django_db
def test_an_illegal_transition_shows_the_reason_and_changes_nothing(admin_client, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)
    before = actions_of(flow)

    response = press(admin_client, flow, "resume")

    assert Flow.objects.get(pk=flow.pk).status == S.ACTIVE
    assert actions_of(flow) == before
    errors = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert errors == ["Cannot resume a flow that is active (allowed from: paused)"]
    assert "Cannot resume a flow that is active" in response.content.decode()


@pytest.mark.django_db
def test_a_transition_the_admin_does_not_offer_is_refused(admin_client, flow_in):
    flow = flow_in(S.READY)

    for name in ("mark_invalid", "complete_launch", "save", "no_such_thing"):
        response = press(admin_client, flow, name)
        assert response.status_code == 200
        assert any("cannot be done from the admin" in m for m in messages_of(response))
    assert Flow.objects.get(pk=flow.pk).status == S.READY


@pytest.mark.django_db
def test_launching_a_draft_with_errors_lists_them_with_links_to_the_nodes(admin_client, flow_in):
    flow = flow_in(S.DRAFT)

    response = press(admin_client, flow, "launch")

    assert Flow.objects.get(pk=flow.pk).status == S.DRAFT
    (error,) = [m for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    assert "The draft has 1 error and cannot be launched" in str(error)
    assert f'href="{change_url(flow)}#node-ask"' in str(error)
    page = response.content.decode()
    assert f'href="{change_url(flow)}#node-ask"' in page
    assert 'id="node-ask"' in page


@pytest.mark.django_db
def test_a_live_flow_without_a_draft_offers_no_launch_button(admin_client, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)

    page = admin_client.get(change_url(flow)).content.decode()

    assert 'value="launch"' not in page
    assert 'value="pause"' in page
    assert 'value="archive"' in page


@pytest.mark.django_db
def test_a_live_flow_with_a_draft_offers_launch_draft_first(admin_client, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=True)

    page = admin_client.get(change_url(flow)).content.decode()

    buttons = [page.index(f'value="{name}"') for name in ("launch", "pause", "archive")]
    assert buttons == sorted(buttons)
    assert ">Launch draft</button>" in page
    assert 'value="resume"' not in page


@pytest.mark.django_db
def test_the_transition_url_applies_a_transition_through_the_service(admin_client, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)
    url = reverse("admin:flows_flow_transition", args=[flow.pk, "pause"])

    assert admin_client.get(url).status_code == 302
    assert Flow.objects.get(pk=flow.pk).status == S.ACTIVE
    response = admin_client.post(url)

    assert response.status_code == 302
    assert Flow.objects.get(pk=flow.pk).status == S.PAUSED
    assert actions_of(flow)[-1] == "flow.paused"


# --- The draft's document -------------------------------------------------------------


@pytest.mark.django_db
def test_saving_a_changed_document_saves_the_draft_through_the_service(admin_client, flow_in, spec_document):
    flow = flow_in(S.ACTIVE, with_draft=True)
    spec_document["nodes"][1]["title"] = "Ask nicely"

    response = admin_client.post(change_url(flow), form_data(flow, draft_document=json.dumps(spec_document)))

    assert response.status_code == 302
    draft = Flow.objects.get(pk=flow.pk).draft
    assert draft.document["nodes"][1]["title"] == "Ask nicely"
    assert actions_of(flow)[-1] == "flow.draft_saved"
    # The live version is untouched.
    assert FlowVersion.objects.get(flow=flow, number=1).document["nodes"][1]["title"] == "Ask to confirm"


@pytest.mark.django_db
def test_saving_without_changing_the_document_does_not_save_the_draft(admin_client, flow_in):
    flow = flow_in(S.READY)
    draft = flow.draft
    reindented = json.dumps(json.loads(draft.document_json), indent=4)
    before = actions_of(flow)

    response = admin_client.post(
        change_url(flow), form_data(flow, draft_document=reindented, description="Hi")
    )

    assert response.status_code == 302
    assert actions_of(flow) == before
    assert Flow.objects.get(pk=flow.pk).description == "Hi"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "a flow document must be a JSON object"),
        ('{"format": "maestra.flow/2", "name": "x"}', "unknown format"),
        ('{"format": "maestra.flow/1", "name": "x", "nodes": {}}', "nodes: must be a list of nodes"),
        ("", "This field is required."),
    ],
)
def test_a_malformed_document_shows_the_errors_and_writes_nothing(admin_client, flow_in, text, expected):
    flow = flow_in(S.READY)
    before_json = flow.draft.document_json
    before_actions = actions_of(flow)

    response = admin_client.post(change_url(flow), form_data(flow, draft_document=text, name="Renamed"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["draft_document"]
    assert any(expected in error for error in errors)
    assert expected in response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')
    flow = Flow.objects.get(pk=flow.pk)
    assert flow.draft.document_json == before_json
    assert flow.name == "Subscription confirmation"
    assert actions_of(flow) == before_actions


@pytest.mark.django_db
def test_a_document_with_errors_is_saved_and_its_errors_link_to_the_failing_nodes(
    admin_client, flow_in, invalid_document
):
    flow = flow_in(S.READY)

    response = admin_client.post(
        change_url(flow), form_data(flow, draft_document=json.dumps(invalid_document)), follow=True
    )

    flow = Flow.objects.get(pk=flow.pk)
    assert flow.status == S.DRAFT
    assert flow.draft.errors[0]["node"] == "ask"
    page = response.content.decode()
    assert '<a href="#node-ask">ask</a>' in page
    assert '<tr id="node-ask" class="flow-node-error">' in page
    # Nodes without errors have their anchor but no highlight.
    assert '<tr id="node-start">' in page


@pytest.mark.django_db
def test_renaming_the_flow_renames_its_draft_document(admin_client, flow_in):
    flow = flow_in(S.READY)

    admin_client.post(change_url(flow), form_data(flow, name="Double opt-in"))

    flow = Flow.objects.get(pk=flow.pk)
    assert flow.name == "Double opt-in"
    assert flow.draft.document["name"] == "Double opt-in"
    assert list(flow.draft.document)[:2] == ["format", "name"]


@pytest.mark.django_db
def test_a_launched_version_cannot_be_edited_from_the_flow_page(admin_client, flow_in, spec_document):
    flow = flow_in(S.ACTIVE, with_draft=False)
    live_json = flow.live_version.document_json
    page = admin_client.get(change_url(flow)).content.decode()
    assert 'name="draft_document"' not in page
    spec_document["nodes"][0]["title"] = "Hacked"

    admin_client.post(change_url(flow), form_data(flow, draft_document=json.dumps(spec_document)))

    flow = Flow.objects.get(pk=flow.pk)
    assert flow.draft is None
    assert flow.live_version.document_json == live_json


@pytest.mark.django_db
def test_the_draft_is_read_only_while_the_flow_is_launching(admin_client, flow_in, spec_document):
    flow = flow_in(S.LAUNCHING)
    before = flow.draft.document_json
    spec_document["nodes"][0]["title"] = "Changed"

    response = admin_client.post(change_url(flow), form_data(flow, draft_document=json.dumps(spec_document)))

    assert response.status_code == 302
    assert Flow.objects.get(pk=flow.pk).draft.document_json == before


# --- Edit, delete draft, duplicate, export ----------------------------------------------


@pytest.mark.django_db
def test_edit_creates_the_one_draft_and_delete_draft_discards_it(admin_client, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)
    edit = reverse("admin:flows_flow_edit", args=[flow.pk])
    assert "Edit</button>" in admin_client.get(change_url(flow)).content.decode()

    assert admin_client.get(edit).status_code == 405
    response = admin_client.post(edit, follow=True)
    assert response.redirect_chain[-1][0] == change_url(flow)
    assert "Draft v2 created from the live version." in messages_of(response)
    admin_client.post(edit)
    assert FlowVersion.objects.filter(flow=flow, state="draft").count() == 1
    page = admin_client.get(change_url(flow)).content.decode()
    assert 'name="draft_document"' in page
    assert "Discard draft…</button>" in page

    admin_client.post(reverse("admin:flows_flow_delete_draft", args=[flow.pk]))

    flow = Flow.objects.get(pk=flow.pk)
    assert flow.draft is None
    assert flow.status == S.ACTIVE
    assert actions_of(flow)[-2:] == ["flow.draft_created", "flow.draft_deleted"]


@pytest.mark.django_db
def test_deleting_the_only_draft_of_a_never_launched_flow_is_refused(admin_client, flow_in):
    flow = flow_in(S.READY)

    response = admin_client.post(reverse("admin:flows_flow_delete_draft", args=[flow.pk]), follow=True)

    assert Flow.objects.get(pk=flow.pk).draft is not None
    assert any("never launched" in m for m in messages_of(response))


@pytest.mark.django_db
def test_duplicate_copies_the_flow_into_a_new_one(admin_client, admin_user, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)

    response = admin_client.post(reverse("admin:flows_flow_duplicate", args=[flow.pk]))

    copy = Flow.objects.exclude(pk=flow.pk).get()
    assert response.status_code == 302
    assert response["Location"] == change_url(copy)
    assert copy.name == "Subscription confirmation (copy)"
    assert copy.status == S.READY
    assert copy.owner == admin_user
    assert copy.draft.document["nodes"] == flow.live_version.document["nodes"]


@pytest.mark.django_db
def test_the_duplicate_action_copies_every_selected_flow(admin_client, flow_in):
    first, second = flow_in(S.ACTIVE, with_draft=False), flow_in(S.DRAFT)

    response = admin_client.post(
        reverse("admin:flows_flow_changelist"),
        {"action": "duplicate_flows", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    assert "2 flow(s) duplicated." in messages_of(response)
    copies = Flow.objects.exclude(pk__in=[first.pk, second.pk])
    assert sorted(copies.values_list("status", flat=True)) == [S.DRAFT, S.READY]
    assert AuditEntry.objects.filter(action="flow.duplicated").count() == 2


@pytest.mark.django_db
def test_there_is_no_bulk_delete_and_launched_flows_cannot_be_deleted(admin_client, flow_in):
    active, ready = flow_in(S.ACTIVE, with_draft=False), flow_in(S.READY)
    changelist = admin_client.get(reverse("admin:flows_flow_changelist")).content.decode()
    assert 'value="delete_selected"' not in changelist

    assert admin_client.get(reverse("admin:flows_flow_delete", args=[active.pk])).status_code == 403
    assert admin_client.get(reverse("admin:flows_flow_delete", args=[ready.pk])).status_code == 200


@pytest.mark.django_db
def test_export_downloads_the_document_exactly_as_saved(admin_client, flow_in, spec_document):
    flow = flow_in(S.ACTIVE, with_draft=True)
    url = reverse("admin:flows_flow_export", args=[flow.pk])

    live = admin_client.get(url, {"version": "live"})
    draft = admin_client.get(url, {"version": "draft"})
    first = admin_client.get(url, {"version": "1"})

    assert live.status_code == 200
    assert live["Content-Type"] == "application/json"
    assert (
        live["Content-Disposition"]
        == f'attachment; filename="flow-{flow.pk}-subscription-confirmation-live.json"'
    )
    assert json.loads(live.content) == spec_document
    assert list(json.loads(live.content)) == list(spec_document)
    assert json.loads(draft.content) == spec_document
    assert first["Content-Disposition"].endswith('-v1.json"')


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["draft", "7", "latest"])
def test_exporting_a_version_that_does_not_exist_shows_an_error(admin_client, flow_in, version):
    flow = flow_in(S.ACTIVE, with_draft=False)

    response = admin_client.get(
        reverse("admin:flows_flow_export", args=[flow.pk]), {"version": version}, follow=True
    )

    assert response.redirect_chain[-1][0] == change_url(flow)
    assert [m.level_tag for m in get_messages(response.wsgi_request)] == ["error"]


# --- Version history ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_change_page_lists_the_version_history(admin_client, admin_user, flow_in):
    flow = flow_in(S.READY)
    lifecycle.launch_flow(flow=flow, user=admin_user, enqueue=False)
    lifecycle.finish_launch(flow_id=flow.pk)
    lifecycle.edit_flow(flow=flow)

    page = admin_client.get(change_url(flow)).content.decode()

    for number in (1, 2):
        assert f'href="{reverse("admin:flows_flow_version", args=[flow.pk, number])}"' in page
    assert admin_user.username in page
    draft_view = admin_client.get(reverse("admin:flows_flow_version", args=[flow.pk, 2]))
    assert draft_view.status_code == 200
    assert "This is the flow's draft" in draft_view.content.decode()


@pytest.mark.django_db
def test_any_version_opens_read_only_as_it_was(admin_client, admin_user, flow_in, spec_document):
    flow = flow_in(S.READY)
    lifecycle.launch_flow(flow=flow, user=admin_user, enqueue=False)
    lifecycle.finish_launch(flow_id=flow.pk)
    lifecycle.edit_flow(flow=flow)
    spec_document["nodes"][1]["title"] = "Second thoughts"
    lifecycle.save_draft(flow=flow, document=spec_document)
    lifecycle.launch_flow(flow=flow, enqueue=False)
    lifecycle.finish_launch(flow_id=flow.pk)

    response = admin_client.get(reverse("admin:flows_flow_version", args=[flow.pk, 1]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "read-only forever" in page
    assert "Ask to confirm" in page
    assert "Second thoughts" not in page
    assert 'id="node-ask"' in page
    assert "Europe/Berlin" in page
    assert response.context["version"].stopped_at is not None
    assert admin_user.username in page
    assert 'name="draft_document"' not in page
    assert "<form" not in page.split('id="content-main"')[1]


@pytest.mark.django_db
def test_a_version_that_does_not_exist_is_a_404(admin_client, flow_in):
    flow = flow_in(S.READY)

    assert admin_client.get(reverse("admin:flows_flow_version", args=[flow.pk, 2])).status_code == 404
    assert admin_client.get(reverse("admin:flows_flow_version", args=[flow.pk + 99, 1])).status_code == 404


# --- Creating a flow ------------------------------------------------------------------------


@pytest.mark.django_db
def test_adding_a_flow_by_name_creates_an_empty_draft(admin_client, admin_user):
    response = admin_client.post(reverse("admin:flows_flow_add"), {"name": "Welcome series"})

    flow = Flow.objects.get()
    assert response.status_code == 302
    assert response["Location"] == change_url(flow)
    assert flow.name == "Welcome series"
    assert flow.owner == admin_user
    assert flow.status == S.DRAFT
    assert flow.draft.document == {
        "format": "maestra.flow/1",
        "name": "Welcome series",
        "nodes": [],
        "edges": [],
    }
    assert actions_of(flow) == ["flow.created"]
    assert admin_client.get(change_url(flow)).status_code == 200


@pytest.mark.django_db
def test_adding_a_flow_from_a_pasted_document_keeps_the_document(admin_client, templates, spec_document):
    response = admin_client.post(reverse("admin:flows_flow_add"), {"document": json.dumps(spec_document)})

    flow = Flow.objects.get()
    assert response.status_code == 302
    assert flow.status == S.READY
    assert flow.name == "Subscription confirmation"
    assert flow.draft.document == spec_document


@pytest.mark.django_db
def test_adding_a_flow_from_an_uploaded_file_uses_the_given_name(admin_client, templates, spec_document):
    upload = SimpleUploadedFile("flow.json", json.dumps(spec_document).encode(), "application/json")

    admin_client.post(reverse("admin:flows_flow_add"), {"name": "Imported", "document_file": upload})

    flow = Flow.objects.get()
    assert flow.name == "Imported"
    assert list(flow.draft.document) == list(spec_document)
    assert flow.draft.document["name"] == "Imported"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "Give the new flow a name, or a document to import."),
        ({"document": "{oops"}, "not valid JSON"),
        ({"document": '{"format": "maestra.flow/1"}'}, "name: missing"),
        ({"document_file": b"\xff\xfe"}, "The file is not UTF-8 text"),
        ({"document_file": b"[1]"}, "a flow document must be a JSON object"),
        (
            {"document": '{"format": "maestra.flow/1", "name": "a"}', "document_file": b"{}"},
            "Paste a document or upload one, not both.",
        ),
    ],
)
def test_adding_a_flow_from_a_bad_document_creates_nothing(admin_client, data, expected):
    if "document_file" in data:
        data = {**data, "document_file": SimpleUploadedFile("flow.json", data["document_file"])}

    response = admin_client.post(reverse("admin:flows_flow_add"), data)

    assert response.status_code == 200
    assert expected in response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')
    assert not Flow.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_the_add_page_renders(admin_client):
    response = admin_client.get(reverse("admin:flows_flow_add"))

    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in response.content.decode()


@pytest.mark.django_db
def test_the_transition_url_runs_the_service_on_post_only_and_needs_change_permission(
    admin_client, flow_in, django_user_model, client
):
    """LifecycleTransitionsMixin (flows/admin/transitions.py): the canvas's
    buttons post here; the service runs (with its audit entry), a GET only
    goes back to the page, and a viewer cannot press anything."""
    from django.contrib.auth.models import Permission

    flow = flow_in(S.ACTIVE, with_draft=False)
    url = reverse("admin:flows_flow_transition", args=[flow.pk, "pause"])

    assert admin_client.get(url).status_code == 302
    assert Flow.objects.get(pk=flow.pk).status == S.ACTIVE

    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_flow"))
    client.force_login(viewer)
    assert client.post(url).status_code == 403
    assert Flow.objects.get(pk=flow.pk).status == S.ACTIVE

    response = admin_client.post(url, follow=True)
    assert Flow.objects.get(pk=flow.pk).status == S.PAUSED
    assert actions_of(flow)[-1] == "flow.paused"
    assert any("The flow is paused" in m for m in messages_of(response))


@pytest.mark.django_db
def test_the_buttons_offered_are_the_available_transitions_the_admin_runs(rf, admin_user, flow_in):
    from django.contrib import admin

    from flows.admin.transitions import TRANSITION_SERVICES

    model_admin = admin.site._registry[Flow]
    request = rf.get("/")
    request.user = admin_user
    live_with_draft = flow_in(S.ACTIVE, with_draft=True)
    live_without = flow_in(S.ACTIVE, with_draft=False)
    paused = flow_in(S.PAUSED, with_draft=False)

    assert model_admin.available_transitions(request, live_with_draft) == [
        ("launch", "Launch draft"),
        ("pause", "Pause"),
        ("archive", "Archive"),
    ]
    # Launching needs a draft.
    assert [name for name, _ in model_admin.available_transitions(request, live_without)] == [
        "pause",
        "archive",
    ]
    assert [name for name, _ in model_admin.available_transitions(request, paused)] == ["resume", "archive"]
    # Never a private method of django-fsm's admin: the buttons run our services.
    assert not any(name.startswith("_fsm") or "fsm_transition" in name for name in dir(model_admin))
    assert set(TRANSITION_SERVICES) == {"launch", "start_test", "stop_test", "pause", "resume", "archive"}
