"""Launch: the draft goes to `launching`, a django-q2 task freezes it and
makes it the live version (or returns the flow to where it was when that
fails), and test mode launches the draft as a test version (SPEC §4, §9)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.timezone import now
from django_q.tasks import async_task

from flows.errors import LifecycleError
from flows.lifecycle.drafts import follow_validity, revalidate
from flows.lifecycle.state import (
    LIVE,
    NEVER_LAUNCHED,
    Status,
    allowed_from,
    errors_message,
    lock_flow,
    refused,
    save_flow,
    stop_version,
    transition,
    user_or_none,
)
from flows.models import Flow, FlowVersion
from flows.nodes.schedule.firing import arm_schedule
from maestra.audit import log as audit
from maestra.faults import error_text, is_system_error
from maestra.wake import ENGINE, wake

log = logging.getLogger(__name__)


def freeze(draft: FlowVersion, *, user, at, is_test: bool) -> None:
    # The one place a draft becomes launched; from here the guard in
    # FlowVersion.save() refuses any change to its document and settings.
    draft.state = FlowVersion.State.LAUNCHED
    draft.is_test = is_test
    draft.launched_at = at
    draft.launched_by = user
    draft.updated_at = at
    draft.save(update_fields=["state", "is_test", "launched_at", "launched_by", "updated_at"])


def _revalidated_draft(
    flow: Flow, *, allowed, verb: str, name: str, no_draft: str, done: str
) -> tuple[FlowVersion, LifecycleError | None]:
    """Under the flow's row lock, before the FSM transition `name` (refused
    with `verb` unless the status is `allowed`): the draft to freeze,
    validated again (the flow's status follows its validity). With errors the
    flow is saved at once, so the fresh errors and status commit, and the
    refusal is returned for the caller to raise after the transaction."""
    if flow.status not in allowed:
        raise refused(verb, flow, allowed_from(name))
    draft = flow.draft
    if draft is None:
        raise LifecycleError(no_draft)
    errors = revalidate(draft)
    follow_validity(flow, draft)
    if not errors:
        return draft, None
    save_flow(flow)
    return draft, LifecycleError(errors_message(done, errors), errors)


def launch_flow(*, flow: Flow, user=None, enqueue: bool = True, keep_paused: bool = False) -> Flow:
    """Request the launch of the draft: the flow goes to `launching` and a
    django-q2 task (flows.tasks.finish_launch_task) freezes the draft after
    commit. `enqueue=False` leaves the finishing to the caller (the import
    command finishes in process) or to flows_tick (finish_pending_launches).
    `keep_paused` on a paused flow: the new version goes live paused (the
    launch review asks; without it a launch resumes the flow)."""
    user = user_or_none(user)
    with transaction.atomic():
        flow = lock_flow(flow)
        draft, refusal = _revalidated_draft(
            flow,
            allowed=(*NEVER_LAUNCHED, *LIVE),
            verb="launch",
            name="launch",
            no_draft="There is no draft to launch: edit the flow first",
            done="launched",
        )
        if refusal is None:
            back_to = flow.status
            transition(flow, "launch", "launch")
            save_flow(flow)
            audit.log(
                "flow.launch_requested",
                user=user,
                subject=flow,
                # finish_launch returns here if the draft turns out invalid.
                data={
                    "version": draft.number,
                    "back_to": back_to,
                    **({"keep_paused": True} if keep_paused and back_to == Status.PAUSED else {}),
                },
            )
            if enqueue:
                flow_id, user_id = flow.pk, user.pk if user else None
                transaction.on_commit(lambda: async_task("flows.tasks.finish_launch_task", flow_id, user_id))
    if refusal is not None:
        raise refusal
    return flow


def finish_launch(*, flow_id: int, user_id: int | None = None) -> Flow:
    """Body of the launch task: freeze the draft and make it the live version.
    Idempotent: a flow no longer in `launching` is left alone. A launch that
    raises returns the flow to its previous status (see _fail_launch)."""
    flow, _finished, _failed = _finish_launch_or_fail(flow_id=flow_id, user_id=user_id)
    return flow


def _finish_launch_or_fail(*, flow_id: int, user_id: int | None) -> tuple[Flow, bool, bool]:
    """(flow, moved out of launching, failed with an error). A flow must never
    stay in `launching`: there it can be neither edited, paused nor archived,
    and every later tick would fail on it again."""
    try:
        flow, finished = _finish_launch(flow_id=flow_id, user_id=user_id)
    except LifecycleError:
        raise
    except Exception as exc:
        if is_system_error(exc):
            raise
        return _fail_launch(flow_id=flow_id, user_id=user_id, error=exc), True, True
    return flow, finished, False


def _fail_launch(*, flow_id: int, user_id: int | None, error: Exception) -> Flow:
    """The launch raised (its transaction rolled back: nothing was frozen or
    armed): the flow goes back to the status it was launched from, and the
    error goes to its audit log as `flow.launch_failed`."""
    text = error_text(error)
    log.error("launch of flow %s failed: %s", flow_id, text, exc_info=error)
    with transaction.atomic():
        flow = lock_flow(flow_id)
        if flow.status != Status.LAUNCHING:
            return flow
        request, user = _launch_request(flow, user_id)
        # The draft is valid: a never-launched flow goes back to `ready`.
        _return_from_launch(
            flow,
            request,
            user=user,
            never_launched=Status.READY,
            data={
                "error": text,
                "errors": [{"node": None, "field": "", "message": f"the launch failed: {text}"}],
            },
        )
    return flow


def _launch_request(flow: Flow, user_id: int | None) -> tuple[Any, Any]:
    """The audit entry of the launch request (it remembers the status the
    flow was launched from) and the user to credit (the requester, unless
    `user_id` names another)."""
    request = flow.audit_entries.filter(action="flow.launch_requested").order_by("-at", "-pk").first()
    if user_id is None and request is not None:
        user_id = request.user_id
    user = get_user_model().objects.filter(pk=user_id).first() if user_id is not None else None
    return request, user


def _return_from_launch(flow: Flow, request, *, user, never_launched: str, data: dict) -> None:
    """Back to the status the launch was requested from, with a
    `flow.launch_failed` entry; a flow whose request is lost goes to `paused`
    when it has a live version, else to `never_launched`."""
    back_to = request.data.get("back_to") if request is not None else None
    if back_to not in (never_launched, *LIVE):
        back_to = Status.PAUSED if flow.live_version_id else never_launched
    draft = flow.draft
    flow.fail_launch(back_to=back_to)
    save_flow(flow)
    audit.log(
        "flow.launch_failed",
        user=user,
        subject=flow,
        data={"version": draft.number if draft else None, **data},
    )


def _finish_launch(*, flow_id: int, user_id: int | None) -> tuple[Flow, bool]:
    with transaction.atomic():
        flow = lock_flow(flow_id)
        if flow.status != Status.LAUNCHING:
            return flow, False
        request, user = _launch_request(flow, user_id)

        draft = flow.draft
        if draft is None:
            errors = [{"node": None, "field": "", "message": "the flow has no draft to launch"}]
        else:
            errors = revalidate(draft)
        if errors:
            # Never launched: its draft is now invalid, so `draft`, not `ready`.
            _return_from_launch(
                flow, request, user=user, never_launched=Status.DRAFT, data={"errors": errors}
            )
            return flow, True

        at = now()
        previous_id = flow.live_version_id
        stop_version(previous_id, at=at)
        freeze(draft, user=user, at=at, is_test=False)
        flow.live_version = draft
        flow.complete_launch()
        keep_paused = bool(request is not None and request.data.get("keep_paused"))
        if keep_paused:
            # Launched from paused and asked to stay so: no run starts in between.
            flow.pause()
        save_flow(flow, "live_version")
        # Runs in flight move to the new version in the engine, by node key.
        audit.log(
            "flow.launched",
            user=user,
            subject=flow,
            data={
                "version": draft.number,
                "previous_version": FlowVersion.objects.filter(pk=previous_id)
                .values_list("number", flat=True)
                .first()
                if previous_id
                else None,
                # Launched from paused and kept paused, as the launch review chose.
                **({"paused": True} if keep_paused else {}),
            },
        )
        # Inside the launch transaction: a version never goes live without
        # the first fire of its schedule start (strictly after the launch).
        arm_schedule(version=draft, now=now())
        # Runs may start now (events waiting, a due schedule): sweep at once.
        wake(ENGINE)
    return flow, True


def finish_pending_launches() -> int:
    """Finish every launch still pending, so a flow never stays in
    `launching` when no cluster runs. Returns how many flows this call moved
    out of `launching` (launched, or returned to where they were)."""
    return finish_pending_launches_counted()["finished"]


def finish_pending_launches_counted() -> dict[str, int]:
    """finish_pending_launches for flows_tick: {"finished", "errors"}. Each
    flow launches in its own transaction; one that raises goes back to its
    previous status alone and the others launch."""
    counts = {"finished": 0, "errors": 0}
    for flow_id in list(Flow.objects.filter(status=Status.LAUNCHING).values_list("pk", flat=True)):
        _flow, acted, failed = _finish_launch_or_fail(flow_id=flow_id, user_id=None)
        counts["finished"] += acted
        counts["errors"] += failed
    return counts


def start_test(*, flow: Flow, user=None) -> Flow:
    """Launch the draft as a test version: only while no live version runs
    (status ready). The draft is frozen as the test version."""
    user = user_or_none(user)
    with transaction.atomic():
        flow = lock_flow(flow)
        draft, refusal = _revalidated_draft(
            flow,
            allowed=NEVER_LAUNCHED,
            verb="start a test of",
            name="start_test",
            no_draft="There is no draft to test",
            done="tested",
        )
        if refusal is None:
            transition(flow, "start_test", "start a test of")
            freeze(draft, user=user, at=now(), is_test=True)
            flow.live_version = draft
            save_flow(flow, "live_version")
            audit.log("flow.test_started", user=user, subject=flow, data={"version": draft.number})
            arm_schedule(version=draft, now=now())
    if refusal is not None:
        raise refusal
    return flow
