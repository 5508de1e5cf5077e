"""The plain status transitions of a launched flow: stop a test, pause,
resume, archive. Stopping runs gives back what they reserved."""

from __future__ import annotations

from django.db import transaction
from django.utils.timezone import now

from flows.lifecycle.drafts import follow_validity, new_draft_from
from flows.lifecycle.state import (
    FLOW_STOPPED,
    IN_FLIGHT,
    lock_flow,
    save_flow,
    stop_version,
    transition,
    user_or_none,
)
from flows.models import Flow, Run
from flows.nodes.limitation import release_reservations
from maestra.audit import log as audit


def stop_runs(flow: Flow, *, at, version_id: int | None = None) -> int:
    runs = Run.objects.filter(flow=flow, status__in=IN_FLIGHT)
    if version_id is not None:
        runs = runs.filter(version_id=version_id)
    # Stopped runs give back the limitation places they reserved, in the same
    # transaction (a subquery: a big flow's runs are never loaded into memory).
    release_reservations(run_ids=runs.values("id"))
    return runs.update(status=Run.Status.STOPPED, stop_reason=FLOW_STOPPED, ended_at=at, due_at=None)


def stop_test(*, flow: Flow, user=None) -> Flow:
    """Stop the test: its runs stop, the test version is kept in the history,
    and a new draft copied from it lets the marketer go on editing."""
    user = user_or_none(user)
    with transaction.atomic():
        flow = lock_flow(flow)
        transition(flow, "stop_test", "stop the test of")
        at = now()
        test_version = flow.live_version
        stopped = 0
        if test_version is not None:
            stopped = stop_runs(flow, at=at, version_id=test_version.pk)
            stop_version(test_version.pk, at=at)
        flow.live_version = None
        draft = flow.draft
        if draft is None and test_version is not None:
            draft = new_draft_from(flow, test_version, user=user)
        if draft is not None:
            follow_validity(flow, draft)
        save_flow(flow, "live_version")
        audit.log(
            "flow.test_stopped",
            user=user,
            subject=flow,
            data={
                "version": test_version.number if test_version else None,
                "draft": draft.number if draft else None,
                "stopped_runs": stopped,
            },
        )
    return flow


def _change_status(flow: Flow, user, *, name: str, verb: str, action: str, effects=None) -> Flow:
    """Under the flow's row lock: the FSM transition `name` (refused with
    `verb`), then `effects(flow)` if given (it returns the audit entry's data),
    the save and the audit entry `action`."""
    user = user_or_none(user)
    with transaction.atomic():
        flow = lock_flow(flow)
        transition(flow, name, verb)
        data = effects(flow) if effects else None
        save_flow(flow)
        audit.log(action, user=user, subject=flow, data=data)
    return flow


def pause_flow(*, flow: Flow, user=None) -> Flow:
    """No new runs; waiting runs stay where they are until resumed."""
    return _change_status(flow, user, name="pause", verb="pause", action="flow.paused")


def resume_flow(*, flow: Flow, user=None) -> Flow:
    return _change_status(flow, user, name="resume", verb="resume", action="flow.resumed")


def archive_flow(*, flow: Flow, user=None) -> Flow:
    """Final: every run in flight stops with `flow_stopped` (one UPDATE) and the
    live version gets stopped_at. The versions stay readable in the history."""

    def stop_everything(flow: Flow) -> dict:
        at = now()
        stopped = stop_runs(flow, at=at)
        stop_version(flow.live_version_id, at=at)
        return {"stopped_runs": stopped}

    return _change_status(
        flow, user, name="archive", verb="archive", action="flow.archived", effects=stop_everything
    )
