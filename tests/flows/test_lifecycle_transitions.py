"""Every lifecycle action from every flow status: the legal ones move the flow
where SPEC §3 says, the illegal ones are refused with a clear message and
change nothing."""

import pytest

from flows import lifecycle
from flows.models import Flow
from maestra.audit.models import AuditEntry

S = Flow.Status
STATUSES = [S.DRAFT, S.READY, S.LAUNCHING, S.ACTIVE, S.PAUSED, S.TESTING, S.CREATING_DRAFT, S.ARCHIVED]
REFUSED = None

ACTIONS = {
    "launch": lambda flow, doc: lifecycle.launch_flow(flow=flow),
    "start_test": lambda flow, doc: lifecycle.start_test(flow=flow),
    "stop_test": lambda flow, doc: lifecycle.stop_test(flow=flow),
    "pause": lambda flow, doc: lifecycle.pause_flow(flow=flow),
    "resume": lambda flow, doc: lifecycle.resume_flow(flow=flow),
    "archive": lambda flow, doc: lifecycle.archive_flow(flow=flow),
    "edit": lambda flow, doc: lifecycle.edit_flow(flow=flow),
    "delete_draft": lambda flow, doc: lifecycle.delete_draft(flow=flow),
    "save_draft": lambda flow, doc: lifecycle.save_draft(flow=flow, document=doc),
}

# Status after the action, per status in STATUSES order (REFUSED: LifecycleError).
# The `draft` flow's draft is invalid; the others' drafts are valid.
_ = REFUSED
EXPECTED = {
    #               draft      ready       launching  active       paused       testing  creating  archived
    "launch":       [_,        S.LAUNCHING, _,        S.LAUNCHING, S.LAUNCHING, _,       _,        _],
    "start_test":   [_,        S.TESTING,  _,         _,           _,           _,       _,        _],
    "stop_test":    [_,        _,          _,         _,           _,           S.READY, _,        _],
    "pause":        [_,        _,          _,         S.PAUSED,    _,           _,       _,        _],
    "resume":       [_,        _,          _,         _,           S.ACTIVE,    _,       _,        _],
    "archive":      [S.ARCHIVED, S.ARCHIVED, _,       S.ARCHIVED,  S.ARCHIVED,  _,       _,        _],
    "edit":         [S.DRAFT,  S.READY,    _,         S.ACTIVE,    S.PAUSED,    _,       _,        _],
    "delete_draft": [_,        _,          _,         S.ACTIVE,    S.PAUSED,    _,       _,        _],
    "save_draft":   [S.READY,  S.READY,    _,         S.ACTIVE,    S.PAUSED,    _,       _,        _],
}  # fmt: skip

CASES = [
    (status, action, EXPECTED[action][index]) for action in ACTIONS for index, status in enumerate(STATUSES)
]


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "action", "expected"), CASES, ids=[f"{s}-{a}" for s, a, _e in CASES])
def test_it_allows_or_refuses_each_action_from_each_status(flow_in, spec_document, status, action, expected):
    flow = flow_in(status)
    assert flow.status == status
    entries_before = AuditEntry.objects.about(flow).count()

    if expected is REFUSED:
        with pytest.raises(lifecycle.LifecycleError) as refused:
            ACTIONS[action](flow, spec_document)
        error = refused.value
        assert error.message and "\n" not in error.message
        # Nothing moved, nothing was logged.
        assert Flow.objects.get(pk=flow.pk).status == status
        assert AuditEntry.objects.about(flow).count() == entries_before
        if status == S.DRAFT and action in ("launch", "start_test"):
            # The draft is invalid: the refusal lists the node-level errors.
            assert [(e["node"], e["field"]) for e in error.errors] == [("ask", "steps.0.template")]
        elif status in (S.DRAFT, S.READY) and action == "delete_draft":
            assert "never launched" in error.message
        else:
            assert f"a flow that is {status} (allowed from: " in error.message
    else:
        ACTIONS[action](flow, spec_document)
        assert Flow.objects.get(pk=flow.pk).status == expected
        if action != "edit":  # edit of a flow that has a draft just opens it
            assert AuditEntry.objects.about(flow).count() > entries_before


@pytest.mark.django_db
def test_it_names_the_action_and_the_allowed_statuses(flow_in):
    flow = flow_in(S.DRAFT)
    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.pause_flow(flow=flow)
    assert refused.value.message == "Cannot pause a flow that is draft (allowed from: active)"

    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.archive_flow(flow=flow_in(S.TESTING))
    assert (
        refused.value.message
        == "Cannot archive a flow that is testing (allowed from: draft, ready, active, paused)"
    )


@pytest.mark.django_db
def test_it_covers_every_transition_declared_on_the_model():
    # If a transition is added to Flow, the table above must learn about it.
    declared = {transition.name for transition in Flow().get_all_status_transitions()}
    assert declared == {
        "mark_ready",
        "mark_invalid",
        "launch",
        "complete_launch",
        "fail_launch",
        "start_test",
        "stop_test",
        "pause",
        "resume",
        "archive",
        "begin_draft",
        "finish_draft",
    }
    assert set(STATUSES) == set(S.values)
