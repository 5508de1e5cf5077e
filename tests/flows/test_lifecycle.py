"""Lifecycle services: create, autosave, launch (task and tick), test mode,
pause/resume/archive, drafts of live flows, duplicate, export, audit."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import transaction
from django_q.conf import Conf

import flows.lifecycle.launch
from channels.models import Template
from customers.models import Customer, Segment
from flows import lifecycle
from flows.document import DocumentError
from flows.models import Flow, FlowVersion, Run
from maestra.audit.models import AuditEntry
from tests.flows import engine_kit as kit
from tests.flows.admin_kit import run_in

S = Flow.Status
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user("ann")


def fresh(flow: Flow) -> Flow:
    return Flow.objects.get(pk=flow.pk)


def actions(flow: Flow) -> list[tuple[str, str | None]]:
    return [
        (entry.action, entry.user.username if entry.user else None)
        for entry in AuditEntry.objects.about(flow).order_by("pk")
    ]


def launched(flow: Flow, user=None) -> Flow:
    lifecycle.launch_flow(flow=flow, user=user, enqueue=False)
    return lifecycle.finish_launch(flow_id=flow.pk)


# --- create and autosave -----------------------------------------------------


@pytest.mark.django_db
def test_it_creates_a_ready_flow_with_version_one_as_draft(templates, spec_document, ann):
    flow = lifecycle.create_flow(document=spec_document, user=ann)

    flow = fresh(flow)
    assert flow.name == "Subscription confirmation"
    assert (flow.status, flow.owner, flow.live_version) == (S.READY, ann, None)
    draft = flow.draft
    assert (draft.number, draft.state, draft.errors, draft.created_by) == (1, "draft", [], ann)
    # Settings projected from the document for the engine.
    assert draft.timezone == "Europe/Berlin"
    assert (draft.launch_limit_mode, draft.launch_limit_period) == ("periodic", timedelta(days=7))
    assert (draft.launch_limit_max_total, draft.start_at, draft.end_at) == (None, None, None)
    # Graph projected into rows, ports defaulted to "next".
    assert sorted(draft.nodes.values_list("key", "kind")) == sorted(
        [("start", "event"), ("ask", "steps"), ("day", "wait"), ("still", "condition"), ("remind", "steps")]
    )
    assert draft.nodes.get(key="ask").title == "Ask to confirm"
    assert sorted(draft.edges.values_list("from_key", "port", "to_key")) == [
        ("ask", "next", "day"),
        ("day", "next", "still"),
        ("start", "next", "ask"),
        ("still", "yes", "remind"),
    ]
    # Stored exactly as given (key order too): export returns it unchanged.
    assert list(json.loads(draft.document_json)) == list(spec_document)
    assert lifecycle.export_document(flow=flow, version="draft") == spec_document
    assert actions(flow) == [("flow.created", "ann")]


@pytest.mark.django_db
def test_it_creates_an_invalid_document_as_a_draft_with_node_level_errors(templates, invalid_document):
    flow = fresh(lifecycle.create_flow(document=json.dumps(invalid_document)))

    assert flow.status == S.DRAFT
    assert [(e["node"], e["field"]) for e in flow.draft.errors] == [("ask", "steps.0.template")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "document",
    ["{not json", "[]", {"format": "maestra.flow/2", "name": "x", "nodes": [], "edges": []}, {"nodes": "x"}],
)
def test_it_refuses_a_malformed_document_and_stores_nothing(document):
    with pytest.raises(DocumentError) as refused:
        lifecycle.create_flow(document=document)
    assert refused.value.errors
    assert not Flow.objects.exists()
    assert not FlowVersion.objects.exists()


@pytest.mark.django_db
def test_it_autosaves_the_draft_and_follows_its_validity(templates, spec_document, invalid_document, ann):
    flow = lifecycle.create_flow(document=spec_document)
    invalid_document["name"] = "Renamed"
    invalid_document["nodes"].pop()  # "remind" goes away
    invalid_document["edges"].pop()

    draft = lifecycle.save_draft(flow=flow, document=invalid_document, user=ann)

    flow = fresh(flow)
    assert (flow.status, flow.name) == (S.DRAFT, "Renamed")
    assert draft.pk == flow.draft.pk and draft.number == 1
    assert "remind" not in set(draft.nodes.values_list("key", flat=True))
    assert draft.edges.count() == 3
    assert draft.errors and draft.errors[0]["node"] == "ask"

    lifecycle.save_draft(flow=flow, document=spec_document, user=ann)
    flow = fresh(flow)
    assert (flow.status, flow.name, flow.draft.errors) == (S.READY, "Subscription confirmation", [])
    assert flow.versions.count() == 1
    assert actions(flow)[-2:] == [("flow.draft_saved", "ann"), ("flow.draft_saved", "ann")]


@pytest.mark.django_db
def test_it_keeps_a_live_flow_active_while_its_draft_is_invalid(templates, spec_document, invalid_document):
    flow = launched(lifecycle.create_flow(document=spec_document))

    draft = lifecycle.save_draft(flow=flow, document=invalid_document)

    flow = fresh(flow)
    assert flow.status == S.ACTIVE
    assert draft.number == 2 and draft.errors
    assert flow.live_version.number == 1


@pytest.mark.django_db
def test_it_refuses_a_malformed_autosave_and_keeps_the_draft(templates, spec_document):
    flow = lifecycle.create_flow(document=spec_document)
    before = flow.draft.document_json

    with pytest.raises(DocumentError):
        lifecycle.save_draft(flow=flow, document={"format": "maestra.flow/1", "nodes": {}})

    assert fresh(flow).draft.document_json == before


@pytest.mark.django_db
def test_it_stores_a_draft_repeating_a_node_key_as_invalid(templates, spec_document):
    spec_document["nodes"].append(
        {"key": "ask", "kind": "wait", "config": {"mode": "fixed", "duration": "PT1H"}}
    )
    spec_document["edges"].append({"from": "start", "to": "day"})  # start.next wired twice

    flow = fresh(lifecycle.create_flow(document=spec_document))

    assert flow.status == S.DRAFT
    assert flow.draft.errors
    assert flow.draft.nodes.get(key="ask").kind == "steps"  # the first one is projected
    assert flow.draft.edges.get(from_key="start").to_key == "ask"


# --- launch ------------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_to_launch_with_the_node_level_errors(templates, invalid_document):
    flow = lifecycle.create_flow(document=invalid_document)

    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.launch_flow(flow=flow)

    assert refused.value.message == "The draft has 1 error and cannot be launched"
    assert refused.value.errors == fresh(flow).draft.errors
    assert refused.value.errors[0]["node"] == "ask"
    assert refused.value.errors[0]["field"] == "steps.0.template"
    assert fresh(flow).status == S.DRAFT


@pytest.mark.django_db
def test_it_revalidates_before_launch_when_a_template_was_deleted(templates, spec_document):
    flow = lifecycle.create_flow(document=spec_document)
    templates["reminder"].delete()

    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.launch_flow(flow=flow)

    assert refused.value.errors[0]["node"] == "remind"
    # The new errors and the status that goes with them are kept.
    flow = fresh(flow)
    assert flow.status == S.DRAFT
    assert flow.draft.errors == refused.value.errors


@pytest.mark.django_db
def test_it_launches_a_draft_flow_whose_template_appeared_since(spec_document, invalid_document):
    flow = lifecycle.create_flow(document=invalid_document)
    Template.objects.create(slug="no-such-template", name="Now exists", channel="email")
    Template.objects.create(slug="reminder", name="Reminder", channel="email")

    flow = lifecycle.launch_flow(flow=flow, enqueue=False)

    assert flow.status == S.LAUNCHING
    assert fresh(flow).draft.errors == []


@pytest.mark.django_db
def test_it_refuses_to_launch_a_live_flow_without_a_draft(flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)

    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.launch_flow(flow=flow)

    assert "no draft" in refused.value.message
    assert fresh(flow).status == S.ACTIVE


@pytest.mark.django_db
def test_it_leaves_launching_through_the_task(
    templates, spec_document, ann, monkeypatch, django_capture_on_commit_callbacks
):
    # django-q2 reads `sync` once at import; the setting alone would not reach it.
    monkeypatch.setattr(Conf, "SYNC", True)
    flow = lifecycle.create_flow(document=spec_document)

    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = lifecycle.launch_flow(flow=flow, user=ann)
        assert result.status == S.LAUNCHING

    # The launch task, then the engine's wake-up (maestra/wake/) once it finished.
    assert [getattr(callback, "target", "launch task") for callback in callbacks] == ["launch task", "engine"]
    flow = fresh(flow)
    assert flow.status == S.ACTIVE
    live = flow.live_version
    assert (live.number, live.state, live.is_test, live.launched_at, live.launched_by) == (
        1,
        "launched",
        False,
        T0,
        ann,
    )
    assert flow.draft is None
    assert actions(flow) == [
        ("flow.created", None),
        ("flow.launch_requested", "ann"),
        ("flow.launched", "ann"),
    ]


@pytest.mark.django_db
def test_it_enqueues_the_task_only_after_commit(
    templates, spec_document, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr(flows.lifecycle.launch, "async_task", lambda *args: enqueued.append(args))
    flow = lifecycle.create_flow(document=spec_document)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        lifecycle.launch_flow(flow=flow)
    assert enqueued == []

    callbacks[0]()
    assert enqueued == [("flows.tasks.finish_launch_task", flow.pk, None)]


@pytest.mark.django_db
def test_it_finishes_pending_launches_without_a_cluster(flow_in, ann):
    first = flow_in(S.READY)
    second = flow_in(S.READY)
    lifecycle.launch_flow(flow=first, user=ann)
    lifecycle.launch_flow(flow=second)

    assert lifecycle.finish_pending_launches() == 2
    assert lifecycle.finish_pending_launches() == 0

    assert fresh(first).status == fresh(second).status == S.ACTIVE
    # The requester is remembered from the launch request.
    assert fresh(first).live_version.launched_by == ann
    assert actions(first)[-1] == ("flow.launched", "ann")


@pytest.mark.django_db
def test_it_finishes_a_launch_only_once(flow_in):
    flow = flow_in(S.LAUNCHING)
    with time_machine.travel(T0, tick=False):
        lifecycle.finish_launch(flow_id=flow.pk)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        again = lifecycle.finish_launch(flow_id=flow.pk)

    assert again.status == S.ACTIVE
    assert again.live_version.launched_at == T0
    assert [a for a, _u in actions(flow)].count("flow.launched") == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("start", "back_to"), [(S.READY, S.DRAFT), (S.ACTIVE, S.ACTIVE), (S.PAUSED, S.PAUSED)]
)
def test_it_fails_a_launch_whose_draft_became_invalid_back_to_where_it_was(
    flow_in, templates, start, back_to
):
    flow = flow_in(start)
    live_before = flow.live_version_id
    lifecycle.launch_flow(flow=flow, enqueue=False)
    templates["confirm"].delete()

    flow = lifecycle.finish_launch(flow_id=flow.pk)

    assert flow.status == back_to
    assert flow.live_version_id == live_before
    assert flow.draft.state == "draft" and flow.draft.errors[0]["node"] == "ask"
    entry = AuditEntry.objects.about(flow).latest("pk")
    assert entry.action == "flow.launch_failed"
    assert entry.data["errors"] == flow.draft.errors


@pytest.mark.django_db
@pytest.mark.parametrize("start", [S.ACTIVE, S.PAUSED])
def test_it_launches_a_new_version_of_a_live_flow(flow_in, spec_document, start, ann):
    flow = flow_in(start)
    spec_document["nodes"][2]["config"]["duration"] = "P2D"
    lifecycle.save_draft(flow=flow, document=spec_document)

    with time_machine.travel(T0, tick=False):
        flow = launched(flow, user=ann)

    assert flow.status == S.ACTIVE
    assert flow.live_version.number == 2
    assert flow.live_version.nodes.get(key="day").config["duration"] == "P2D"
    old = flow.versions.get(number=1)
    assert (old.state, old.stopped_at) == ("launched", T0)
    assert flow.live_version.stopped_at is None
    assert AuditEntry.objects.about(flow).filter(action="flow.launched").latest("pk").data == {
        "version": 2,
        "previous_version": 1,
    }


@pytest.mark.django_db
def test_launching_arms_the_schedule_start(templates):
    # The first fire strictly after the launch, set inside the launch
    # transaction: a schedule never goes live without it.
    document = kit.document(
        [
            kit.node(
                "start", "schedule", recurrence={"every": "day", "at": "10:00"}, audience={"segment": "vip"}
            ),
            kit.steps("mail", kit.send("confirm")),
        ],
        kit.chain("start", "mail"),
    )
    Segment.objects.create(slug="vip", name="VIP")
    with kit.at(T0):
        flow = kit.launch(document)
    assert FlowVersion.objects.get(pk=flow.live_version_id).next_fire_at == datetime(
        2026, 3, 2, 10, 0, tzinfo=UTC
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("start", "back_to"), [(S.READY, S.READY), (S.ACTIVE, S.ACTIVE), (S.PAUSED, S.PAUSED)]
)
def test_a_launch_that_raises_returns_the_flow_to_where_it_was_with_the_error(
    flow_in, monkeypatch, ann, start, back_to
):
    """Never stuck in `launching` (issue #11): there a flow can be neither
    edited, paused nor archived, and every tick failed on it again."""

    def hook(*, version, now):
        raise ValueError("the recurrence does not fire")

    flow = flow_in(start)
    live_before = flow.live_version_id
    lifecycle.launch_flow(flow=flow, user=ann, enqueue=False)
    monkeypatch.setattr(flows.lifecycle.launch, "arm_schedule", hook)

    flow = lifecycle.finish_launch(flow_id=flow.pk)

    assert flow.status == back_to
    assert flow.live_version_id == live_before
    assert flow.draft.state == FlowVersion.State.DRAFT  # the freeze was rolled back
    entry = AuditEntry.objects.about(flow).latest("pk")
    assert (entry.action, entry.user) == ("flow.launch_failed", ann)
    assert entry.data["error"] == "ValueError: the recurrence does not fire"
    assert entry.data["errors"][0]["message"] == "the launch failed: ValueError: the recurrence does not fire"
    # It can be launched again once the cause is gone.
    monkeypatch.undo()
    assert launched(flow).status == S.ACTIVE


@pytest.mark.django_db
def test_one_failing_launch_does_not_stop_the_others(flow_in, monkeypatch):
    first, second, third = flow_in(S.READY), flow_in(S.READY), flow_in(S.READY)
    for flow in (first, second, third):
        lifecycle.launch_flow(flow=flow, enqueue=False)
    arm_schedule = flows.lifecycle.launch.arm_schedule

    def hook(*, version, now):
        if version.flow_id == second.pk:
            raise OverflowError("date value out of range")
        arm_schedule(version=version, now=now)

    monkeypatch.setattr(flows.lifecycle.launch, "arm_schedule", hook)

    assert lifecycle.finish_pending_launches_counted() == {"finished": 3, "errors": 1}
    assert [fresh(flow).status for flow in (first, second, third)] == [S.ACTIVE, S.READY, S.ACTIVE]


@pytest.mark.django_db
def test_it_stores_a_launch_cap_beyond_the_column_as_an_invalid_draft(templates, spec_document):
    # 2**31 does not fit the integer column: PostgreSQL raised "integer out of range" (an API 500).
    spec_document["launch_limit"]["max_total"] = 2**31
    flow = fresh(lifecycle.create_flow(document=spec_document))
    assert flow.status == S.DRAFT
    assert [(e["node"], e["field"]) for e in flow.draft.errors] == [(None, "launch_limit.max_total")]
    assert flow.draft.launch_limit_max_total is None


# --- pause, resume, archive --------------------------------------------------


@pytest.mark.django_db
def test_it_pauses_and_resumes_with_audit_entries(flow_in, ann):
    flow = flow_in(S.ACTIVE, with_draft=False)

    assert lifecycle.pause_flow(flow=flow, user=ann).status == S.PAUSED
    assert fresh(flow).status == S.PAUSED
    assert lifecycle.resume_flow(flow=flow, user=ann).status == S.ACTIVE
    assert fresh(flow).status == S.ACTIVE
    assert actions(flow)[-2:] == [("flow.paused", "ann"), ("flow.resumed", "ann")]


def _run(flow: Flow, customer: Customer, status: str, **extra) -> Run:
    due_at = T0 + timedelta(days=1) if status in ("active", "waiting") else None
    return run_in(flow, customer, status=status, clock=T0, due_at=due_at, **extra)


@pytest.mark.django_db
def test_it_archives_a_flow_and_stops_its_runs_in_flight(flow_in, ann, django_assert_max_num_queries):
    flow = flow_in(S.ACTIVE)
    other = flow_in(S.ACTIVE, with_draft=False)
    customers = [Customer.objects.create(external_id=f"c{i}") for i in range(4)]
    waiting = _run(flow, customers[0], "waiting")
    active = _run(flow, customers[1], "active")
    completed = _run(flow, customers[2], "completed", ended_at=T0)
    elsewhere = _run(other, customers[3], "waiting")
    stop_at = T0 + timedelta(hours=5)

    with time_machine.travel(stop_at, tick=False), django_assert_max_num_queries(12):
        flow = lifecycle.archive_flow(flow=flow, user=ann)

    assert flow.status == S.ARCHIVED
    for run in (waiting, active):
        run.refresh_from_db()
        assert (run.status, run.stop_reason, run.ended_at, run.due_at) == (
            "stopped",
            "flow_stopped",
            stop_at,
            None,
        )
    completed.refresh_from_db()
    assert (completed.status, completed.stop_reason, completed.ended_at) == ("completed", "", T0)
    elsewhere.refresh_from_db()
    assert elsewhere.status == "waiting"
    assert fresh(flow).live_version.stopped_at == stop_at
    entry = AuditEntry.objects.about(flow).latest("pk")
    assert (entry.action, entry.user, entry.data) == ("flow.archived", ann, {"stopped_runs": 2})


@pytest.mark.django_db
def test_it_archives_a_flow_that_never_ran(flow_in):
    flow = lifecycle.archive_flow(flow=flow_in(S.DRAFT))

    assert flow.status == S.ARCHIVED
    assert flow.versions.get().stopped_at is None


# --- drafts of live flows ----------------------------------------------------


@pytest.mark.django_db
def test_it_deletes_the_draft_of_a_live_flow(flow_in, ann):
    flow = flow_in(S.PAUSED)
    number = flow.draft.number

    lifecycle.delete_draft(flow=flow, user=ann)

    flow = fresh(flow)
    assert flow.draft is None
    assert flow.status == S.PAUSED
    assert flow.live_version.number == 1
    assert actions(flow)[-1] == ("flow.draft_deleted", "ann")
    assert AuditEntry.objects.about(flow).latest("pk").data == {"version": number}
    with pytest.raises(lifecycle.LifecycleError, match="no draft to delete"):
        lifecycle.delete_draft(flow=flow)


@pytest.mark.django_db
def test_it_refuses_to_delete_the_only_draft_of_a_never_launched_flow(flow_in):
    flow = flow_in(S.READY)

    with pytest.raises(lifecycle.LifecycleError, match="never launched"):
        lifecycle.delete_draft(flow=flow)

    assert fresh(flow).draft is not None


# --- duplicate ---------------------------------------------------------------


@pytest.mark.django_db
def test_it_duplicates_the_draft_of_a_flow_into_a_new_ready_flow(flow_in, spec_document, ann):
    flow = flow_in(S.ACTIVE)
    spec_document["nodes"][2]["config"]["duration"] = "PT3H"
    lifecycle.save_draft(flow=flow, document=spec_document)

    copy = lifecycle.duplicate_flow(flow=flow, user=ann)

    copy = fresh(copy)
    assert copy.name == "Subscription confirmation (copy)"
    assert (copy.status, copy.owner, copy.live_version) == (S.READY, ann, None)
    version = copy.versions.get()
    assert (version.number, version.state, version.errors) == (1, "draft", [])
    document = lifecycle.export_document(flow=copy, version="draft")
    assert document["name"] == "Subscription confirmation (copy)"
    assert list(document) == list(spec_document)  # the name keeps its place
    assert document["nodes"][2]["config"]["duration"] == "PT3H"
    assert version.nodes.count() == 5
    # The original is untouched.
    assert fresh(flow).status == S.ACTIVE
    assert fresh(flow).name == "Subscription confirmation"
    assert actions(copy) == [("flow.duplicated", "ann")]
    assert AuditEntry.objects.about(copy).get().data == {"from_flow": flow.pk, "from_version": 2}


@pytest.mark.django_db
def test_it_duplicates_the_live_version_when_there_is_no_draft(flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)

    copy = lifecycle.duplicate_flow(flow=flow)

    assert copy.status == S.READY
    assert (
        lifecycle.export_document(flow=copy, version="draft")["nodes"]
        == lifecycle.export_document(flow=flow)["nodes"]
    )


@pytest.mark.django_db
def test_it_duplicates_an_invalid_flow_as_a_draft_and_keeps_long_names_in_bounds(invalid_document):
    invalid_document["name"] = "x" * 200
    flow = lifecycle.create_flow(document=invalid_document)

    copy = fresh(lifecycle.duplicate_flow(flow=flow))

    assert copy.status == S.DRAFT
    assert len(copy.name) == 200 and copy.name.endswith(" (copy)")
    assert copy.draft.errors == fresh(flow).draft.errors


# --- test mode ---------------------------------------------------------------


@pytest.mark.django_db
def test_it_runs_a_test_and_stops_it_back_into_an_editable_draft(flow_in, ann):
    flow = flow_in(S.READY)
    with time_machine.travel(T0, tick=False):
        flow = lifecycle.start_test(flow=flow, user=ann)

    assert flow.status == S.TESTING
    test_version = flow.live_version
    assert (test_version.state, test_version.is_test, test_version.launched_by) == ("launched", True, ann)
    assert flow.draft is None
    customer = Customer.objects.create(external_id="tester")
    run = _run(flow, customer, "waiting", is_test=True)

    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        flow = lifecycle.stop_test(flow=flow, user=ann)

    flow = fresh(flow)
    assert flow.status == S.READY
    assert flow.live_version is None
    test_version.refresh_from_db()
    assert test_version.stopped_at == T0 + timedelta(hours=1)
    run.refresh_from_db()
    assert (run.status, run.stop_reason, run.due_at) == ("stopped", "flow_stopped", None)
    draft = flow.draft
    assert draft.number == 2
    assert draft.document_json == test_version.document_json
    assert actions(flow)[-2:] == [("flow.test_started", "ann"), ("flow.test_stopped", "ann")]


@pytest.mark.django_db
def test_it_stops_a_test_into_a_draft_status_when_the_copy_is_invalid(flow_in, templates):
    flow = lifecycle.start_test(flow=flow_in(S.READY))
    templates["reminder"].delete()

    flow = lifecycle.stop_test(flow=flow)

    assert flow.status == S.DRAFT
    assert fresh(flow).draft.errors[0]["node"] == "remind"


@pytest.mark.django_db
def test_it_refuses_a_test_of_an_invalid_draft(flow_in):
    flow = flow_in(S.DRAFT)

    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.start_test(flow=flow)

    assert refused.value.errors[0]["node"] == "ask"
    assert fresh(flow).status == S.DRAFT
    assert fresh(flow).live_version is None


# --- export ------------------------------------------------------------------


@pytest.mark.django_db
def test_it_exports_any_version_and_refuses_unknown_ones(flow_in, spec_document):
    flow = flow_in(S.ACTIVE)

    assert lifecycle.export_document(flow=flow) == spec_document
    assert lifecycle.export_document(flow=flow, version=1) == spec_document
    assert lifecycle.export_document(flow=flow, version="2") == spec_document
    assert lifecycle.export_document(flow=flow, version="draft") == spec_document
    for missing in (3, "3", "latest", "", -1, True):
        with pytest.raises(lifecycle.VersionNotFound):
            lifecycle.export_document(flow=flow, version=missing)
    ready = flow_in(S.READY)
    with pytest.raises(lifecycle.VersionNotFound, match="no live version"):
        lifecycle.export_document(flow=ready)


# --- audit -------------------------------------------------------------------


@pytest.mark.django_db
def test_it_writes_an_audit_entry_for_every_action_with_its_user(templates, spec_document, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    flow = lifecycle.create_flow(document=spec_document, user=bob)
    lifecycle.save_draft(flow=flow, document=spec_document, user=bob)
    lifecycle.start_test(flow=flow, user=bob)
    lifecycle.stop_test(flow=flow, user=bob)
    lifecycle.launch_flow(flow=flow, user=bob, enqueue=False)
    lifecycle.finish_pending_launches()
    lifecycle.pause_flow(flow=flow, user=bob)
    lifecycle.resume_flow(flow=flow, user=bob)
    lifecycle.edit_flow(flow=flow, user=bob)
    lifecycle.delete_draft(flow=flow, user=bob)
    copy = lifecycle.duplicate_flow(flow=flow, user=bob)
    lifecycle.archive_flow(flow=flow, user=bob)

    assert actions(flow) == [
        ("flow.created", "bob"),
        ("flow.draft_saved", "bob"),
        ("flow.test_started", "bob"),
        ("flow.test_stopped", "bob"),
        ("flow.launch_requested", "bob"),
        ("flow.launched", "bob"),
        ("flow.paused", "bob"),
        ("flow.resumed", "bob"),
        ("flow.draft_created", "bob"),
        ("flow.draft_deleted", "bob"),
        ("flow.archived", "bob"),
    ]
    assert actions(copy) == [("flow.duplicated", "bob")]


@pytest.mark.django_db
def test_it_rolls_the_audit_entry_back_with_a_failed_action(flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)

    with pytest.raises(RuntimeError), transaction.atomic():
        lifecycle.pause_flow(flow=flow)
        raise RuntimeError("the caller's transaction fails later")

    assert fresh(flow).status == S.ACTIVE
    assert "flow.paused" not in [a for a, _u in actions(flow)]


@pytest.mark.django_db
def test_it_refuses_unknown_audit_actions():
    from maestra.audit.log import log

    with pytest.raises(ValueError, match="Unknown audit action"):
        log("flow.exploded")


@pytest.mark.django_db
def test_it_runs_the_launch_task_by_primary_keys(flow_in, ann):
    from flows.tasks import finish_launch_task

    flow = flow_in(S.LAUNCHING)

    assert finish_launch_task(flow.pk, ann.pk) == "active"
    assert fresh(flow).live_version.launched_by == ann
    assert finish_launch_task(flow.pk, ann.pk) == "active"  # again: nothing happens
    flow.delete()
    assert finish_launch_task(flow.pk) == "missing"


@pytest.mark.django_db
def test_it_renames_a_flow_with_an_audit_entry(flow_in, django_user_model):
    from flows import lifecycle

    user = django_user_model.objects.create(username="marketer")
    flow = flow_in("ready")
    lifecycle.rename_flow(flow=flow, name="Welcome series", description="new", user=user)
    flow.refresh_from_db()
    assert flow.name == "Welcome series"
    assert json.loads(flow.draft.document_json)["name"] == "Welcome series"
    entry = AuditEntry.objects.about(flow).filter(action="flow.renamed").get()
    assert entry.user == user
    assert entry.data == {"name": "Welcome series", "description": "new"}
