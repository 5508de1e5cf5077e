"""The life of a flow: create, autosave the draft, launch, test, pause, resume,
archive, edit a live flow through a draft, duplicate (SPEC §3, §4, §9).

Every service runs in one transaction, takes a row lock on the flow where it
changes its state (two admins clicking at once queue instead of racing), and
writes an audit entry. The status only moves through the django-fsm
transitions declared on Flow; a transition that is not allowed from the
current status is refused with a LifecycleError naming the statuses it is
allowed from, never ignored.

Launched versions are frozen: these services never write a launched version's
document, settings or Node/Edge rows (FlowVersion.save() guards the row as well).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.timezone import now
from django_fsm import TransitionNotAllowed
from django_q.tasks import async_task

from flows.document import MAX_NAME_LENGTH, document_settings, dump_document, graph_rows, parse_document
from flows.entry import arm_schedule
from flows.errors import (  # noqa: F401 (VersionNotFound, DraftConflict: importable from here)
    DraftConflict,
    LifecycleError,
    VersionNotFound,
)
from flows.models import Edge, Flow, FlowVersion, FrozenVersionError, Node, Run
from flows.validation import validate_document
from maestra.audit import log as audit
from maestra.faults import error_text, is_system_error
from maestra.wake import ENGINE, wake

log = logging.getLogger(__name__)

Status = Flow.Status

# Statuses of a flow that was never launched: its draft is all there is, and
# its status follows the draft's validity (draft <-> ready).
NEVER_LAUNCHED = (Status.DRAFT, Status.READY)
LIVE = (Status.ACTIVE, Status.PAUSED)
# The draft may be written in these statuses. Not while launching (the draft
# is being frozen), testing (the draft *is* the test version; stop the test to
# edit), creating_draft (transient) or archived (final).
DRAFT_WRITABLE = (Status.DRAFT, Status.READY, Status.ACTIVE, Status.PAUSED)
IN_FLIGHT = (Run.Status.ACTIVE, Run.Status.WAITING)
FLOW_STOPPED = "flow_stopped"

SETTINGS_FIELDS = (
    "timezone",
    "launch_limit_mode",
    "launch_limit_period",
    "launch_limit_max_total",
    "start_at",
    "end_at",
)


# --- Helpers -----------------------------------------------------------------


def _allowed_from(method_name: str) -> list[str]:
    meta = getattr(Flow, method_name)._django_fsm
    return [Status(source).value for source in meta.transitions]


def _refusal(verb: str, flow: Flow, allowed: list[str] | tuple[str, ...]) -> LifecycleError:
    allowed_text = ", ".join(Status(value).value for value in allowed)
    return LifecycleError(f"Cannot {verb} a flow that is {flow.status} (allowed from: {allowed_text})")


def _transition(flow: Flow, method_name: str, verb: str, **kwargs: Any) -> None:
    try:
        getattr(flow, method_name)(**kwargs)
    except TransitionNotAllowed:
        raise _refusal(verb, flow, _allowed_from(method_name)) from None


def _lock(flow: Flow | int) -> Flow:
    """The flow's row, locked until the transaction ends, read fresh: the
    caller's instance may be stale (and a protected FSM field cannot be
    refreshed in place)."""
    pk = flow if isinstance(flow, int) else flow.pk
    try:
        return Flow.objects.select_for_update().get(pk=pk)
    except Flow.DoesNotExist:
        raise LifecycleError(f"Flow {pk} does not exist") from None


def _save_flow(flow: Flow, *fields: str) -> None:
    flow.updated_at = now()
    flow.save(update_fields=["status", "updated_at", *fields])


def _user_or_none(user):
    # AnonymousUser (an API key request) and None both mean "nobody in particular".
    return user if user is not None and getattr(user, "pk", None) else None


def _next_number(flow: Flow) -> int:
    return (flow.versions.aggregate(top=Max("number"))["top"] or 0) + 1


def _flow_name(doc: dict) -> str:
    return doc["name"][:MAX_NAME_LENGTH]


def _write_draft(version: FlowVersion, doc: dict, *, text: str | None = None) -> None:
    """Store `doc` as the draft's document: validate it, project its settings
    and replace its Node/Edge rows. Saves the version (new or existing)."""
    if version.state != FlowVersion.State.DRAFT:
        raise FrozenVersionError(f"{version} is launched and cannot be changed")
    version.document_json = text if text is not None else dump_document(doc)
    version.__dict__.pop("document", None)  # the cached parse of the old text
    version.errors = validate_document(doc)
    flow_settings = document_settings(doc)
    for name in SETTINGS_FIELDS:
        setattr(version, name, getattr(flow_settings, name))
    version.updated_at = now()
    version.revision += 1
    version.save()
    _replace_graph(version, doc)


def _replace_graph(version: FlowVersion, doc: dict) -> None:
    node_rows, edge_rows = graph_rows(doc)
    Node.objects.filter(version=version).delete()
    Edge.objects.filter(version=version).delete()
    # A well-formed document may still repeat a node key or wire one port twice;
    # validation reports that (so the draft cannot launch), and the projection
    # keeps the first occurrence, so the draft can still be stored.
    seen_keys: set[str] = set()
    nodes = []
    for row in node_rows:
        if row["key"] in seen_keys:
            continue
        seen_keys.add(row["key"])
        nodes.append(Node(version=version, **row))
    seen_ports: set[tuple[str, str]] = set()
    edges = []
    for row in edge_rows:
        if (row["from_key"], row["port"]) in seen_ports:
            continue
        seen_ports.add((row["from_key"], row["port"]))
        edges.append(Edge(version=version, **row))
    Node.objects.bulk_create(nodes)
    Edge.objects.bulk_create(edges)


def _new_draft_from(flow: Flow, source: FlowVersion, *, user) -> FlowVersion:
    """A new draft of `flow` holding a copy of `source`'s document, validated
    against today's templates, segments and pools."""
    draft = FlowVersion(flow=flow, number=_next_number(flow), created_by=user)
    _write_draft(draft, json.loads(source.document_json), text=source.document_json)
    return draft


def _revalidate(draft: FlowVersion) -> list[dict]:
    """Validate the draft again: templates, segments or pools it refers to may
    have appeared or disappeared since it was saved."""
    errors = validate_document(draft.document)
    if errors != draft.errors:
        draft.errors = errors
        draft.updated_at = now()
        draft.save(update_fields=["errors", "updated_at"])
    return errors


def _follow_validity(flow: Flow, draft: FlowVersion) -> None:
    """A never-launched flow is `ready` exactly when its draft is valid."""
    if flow.status == Status.DRAFT and draft.is_valid:
        flow.mark_ready()
    elif flow.status == Status.READY and not draft.is_valid:
        flow.mark_invalid()


def _errors_message(action: str, errors: list[dict]) -> str:
    count = len(errors)
    return f"The draft has {count} error{'s' if count != 1 else ''} and cannot be {action}"


def _freeze(draft: FlowVersion, *, user, at, is_test: bool) -> None:
    # The one place a draft becomes launched; from here the guard in
    # FlowVersion.save() refuses any change to its document and settings.
    draft.state = FlowVersion.State.LAUNCHED
    draft.is_test = is_test
    draft.launched_at = at
    draft.launched_by = user
    draft.updated_at = at
    draft.save(update_fields=["state", "is_test", "launched_at", "launched_by", "updated_at"])


def _stop_version(version_id: int | None, *, at) -> None:
    if version_id is not None:
        FlowVersion.objects.filter(pk=version_id, stopped_at__isnull=True).update(
            stopped_at=at, next_fire_at=None, updated_at=at
        )


def _stop_runs(flow: Flow, *, at, version_id: int | None = None) -> int:
    runs = Run.objects.filter(flow=flow, status__in=IN_FLIGHT)
    if version_id is not None:
        runs = runs.filter(version_id=version_id)
    from flows.nodes.limitation import release_reservations

    # Stopped runs give back the limitation places they reserved, in the same
    # transaction (a subquery: a big flow's runs are never loaded into memory).
    release_reservations(run_ids=runs.values("id"))
    return runs.update(status=Run.Status.STOPPED, stop_reason=FLOW_STOPPED, ended_at=at, due_at=None)


# --- Create and autosave -----------------------------------------------------


def create_flow(*, document: dict | str, user=None) -> Flow:
    """A new flow from a document; version 1 is its draft. A malformed document
    raises flows.document.DocumentError; a well-formed one with semantic errors
    is stored as an invalid draft (status draft)."""
    doc = parse_document(document)
    user = _user_or_none(user)
    with transaction.atomic():
        flow = Flow.objects.create(name=_flow_name(doc), owner=user)
        draft = FlowVersion(flow=flow, number=1, created_by=user)
        _write_draft(draft, doc)
        _follow_validity(flow, draft)
        _save_flow(flow)
        audit.log("flow.created", user=user, subject=flow, data={"version": 1, "errors": len(draft.errors)})
    return flow


def save_draft(
    *, flow: Flow, document: dict | str, user=None, expected_revision: int | None = None
) -> FlowVersion:
    """Autosave: replace the draft's document (creating the draft if the flow
    has none). A never-launched flow moves draft <-> ready with the draft's
    validity; a live flow keeps its status. With `expected_revision` (the
    editor's), a draft written since is refused with DraftConflict."""
    doc = parse_document(document)
    user = _user_or_none(user)
    with transaction.atomic():
        flow = _lock(flow)
        if flow.status not in DRAFT_WRITABLE:
            raise _refusal("save a draft of", flow, DRAFT_WRITABLE)
        draft = flow.draft
        created = draft is None
        if expected_revision is not None and (draft.revision if draft else 0) != expected_revision:
            raise DraftConflict(
                "The draft was changed elsewhere (another tab or person) since this page loaded it",
                revision=draft.revision if draft else 0,
            )
        if created:
            draft = FlowVersion(flow=flow, number=_next_number(flow), created_by=user)
        _write_draft(draft, doc)
        flow.name = _flow_name(doc)
        _follow_validity(flow, draft)
        _save_flow(flow, "name")
        audit.log(
            "flow.draft_saved",
            user=user,
            subject=flow,
            data={"version": draft.number, "created": created, "errors": len(draft.errors)},
        )
    return draft


# --- Launch ------------------------------------------------------------------


def launch_flow(*, flow: Flow, user=None, enqueue: bool = True, keep_paused: bool = False) -> Flow:
    """Request the launch of the draft: the flow goes to `launching` and a
    django-q2 task (flows.tasks.finish_launch_task) freezes the draft after
    commit. `enqueue=False` leaves the finishing to the caller (the import
    command finishes in process) or to flows_tick (finish_pending_launches).
    `keep_paused` on a paused flow: the new version goes live paused (the
    launch review asks; without it a launch resumes the flow)."""
    user = _user_or_none(user)
    refusal = None
    with transaction.atomic():
        flow = _lock(flow)
        if flow.status not in (*NEVER_LAUNCHED, *LIVE):
            raise _refusal("launch", flow, _allowed_from("launch"))
        draft = flow.draft
        if draft is None:
            raise LifecycleError("There is no draft to launch: edit the flow first")
        errors = _revalidate(draft)
        _follow_validity(flow, draft)
        if errors:
            # Commit the fresh errors (and draft status) first, then refuse.
            _save_flow(flow)
            refusal = LifecycleError(_errors_message("launched", errors), errors)
        else:
            back_to = flow.status
            _transition(flow, "launch", "launch")
            _save_flow(flow)
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
        flow = _lock(flow_id)
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
    _save_flow(flow)
    audit.log(
        "flow.launch_failed",
        user=user,
        subject=flow,
        data={"version": draft.number if draft else None, **data},
    )


def _finish_launch(*, flow_id: int, user_id: int | None) -> tuple[Flow, bool]:
    with transaction.atomic():
        flow = _lock(flow_id)
        if flow.status != Status.LAUNCHING:
            return flow, False
        request, user = _launch_request(flow, user_id)

        draft = flow.draft
        if draft is None:
            errors = [{"node": None, "field": "", "message": "the flow has no draft to launch"}]
        else:
            errors = _revalidate(draft)
        if errors:
            # Never launched: its draft is now invalid, so `draft`, not `ready`.
            _return_from_launch(
                flow, request, user=user, never_launched=Status.DRAFT, data={"errors": errors}
            )
            return flow, True

        at = now()
        previous_id = flow.live_version_id
        _stop_version(previous_id, at=at)
        _freeze(draft, user=user, at=at, is_test=False)
        flow.live_version = draft
        flow.complete_launch()
        keep_paused = bool(request is not None and request.data.get("keep_paused"))
        if keep_paused:
            # Launched from paused and asked to stay so: no run starts in between.
            flow.pause()
        _save_flow(flow, "live_version")
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


# --- Test mode (SPEC §9) -----------------------------------------------------


def start_test(*, flow: Flow, user=None) -> Flow:
    """Launch the draft as a test version: only while no live version runs
    (status ready). The draft is frozen as the test version."""
    user = _user_or_none(user)
    refusal = None
    with transaction.atomic():
        flow = _lock(flow)
        if flow.status not in NEVER_LAUNCHED:
            raise _refusal("start a test of", flow, _allowed_from("start_test"))
        draft = flow.draft
        if draft is None:
            raise LifecycleError("There is no draft to test")
        errors = _revalidate(draft)
        _follow_validity(flow, draft)
        if errors:
            _save_flow(flow)
            refusal = LifecycleError(_errors_message("tested", errors), errors)
        else:
            _transition(flow, "start_test", "start a test of")
            _freeze(draft, user=user, at=now(), is_test=True)
            flow.live_version = draft
            _save_flow(flow, "live_version")
            audit.log("flow.test_started", user=user, subject=flow, data={"version": draft.number})
            arm_schedule(version=draft, now=now())
    if refusal is not None:
        raise refusal
    return flow


def stop_test(*, flow: Flow, user=None) -> Flow:
    """Stop the test: its runs stop, the test version is kept in the history,
    and a new draft copied from it lets the marketer go on editing."""
    user = _user_or_none(user)
    with transaction.atomic():
        flow = _lock(flow)
        _transition(flow, "stop_test", "stop the test of")
        at = now()
        test_version = flow.live_version
        stopped = 0
        if test_version is not None:
            stopped = _stop_runs(flow, at=at, version_id=test_version.pk)
            _stop_version(test_version.pk, at=at)
        flow.live_version = None
        draft = flow.draft
        if draft is None and test_version is not None:
            draft = _new_draft_from(flow, test_version, user=user)
        if draft is not None:
            _follow_validity(flow, draft)
        _save_flow(flow, "live_version")
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


# --- Pause, resume, archive --------------------------------------------------


def pause_flow(*, flow: Flow, user=None) -> Flow:
    """No new runs; waiting runs stay where they are until resumed."""
    user = _user_or_none(user)
    with transaction.atomic():
        flow = _lock(flow)
        _transition(flow, "pause", "pause")
        _save_flow(flow)
        audit.log("flow.paused", user=user, subject=flow)
    return flow


def resume_flow(*, flow: Flow, user=None) -> Flow:
    user = _user_or_none(user)
    with transaction.atomic():
        flow = _lock(flow)
        _transition(flow, "resume", "resume")
        _save_flow(flow)
        audit.log("flow.resumed", user=user, subject=flow)
    return flow


def archive_flow(*, flow: Flow, user=None) -> Flow:
    """Final: every run in flight stops with `flow_stopped` (one UPDATE) and the
    live version gets stopped_at. The versions stay readable in the history."""
    user = _user_or_none(user)
    with transaction.atomic():
        flow = _lock(flow)
        _transition(flow, "archive", "archive")
        at = now()
        stopped = _stop_runs(flow, at=at)
        _stop_version(flow.live_version_id, at=at)
        _save_flow(flow)
        audit.log("flow.archived", user=user, subject=flow, data={"stopped_runs": stopped})
    return flow


# --- Drafts of live flows, duplicate ----------------------------------------


def edit_flow(*, flow: Flow, user=None) -> FlowVersion:
    """The flow's one draft: the existing one, or (on a live flow) a new one
    copied from the live version. A second Edit opens the same draft."""
    user = _user_or_none(user)
    with transaction.atomic():
        flow = _lock(flow)
        if flow.status not in DRAFT_WRITABLE:
            raise _refusal("edit", flow, _allowed_from("begin_draft"))
        existing = flow.draft
        if existing is not None:
            return existing
        source = flow.live_version or flow.versions.order_by("-number").first()
        if source is None:
            raise LifecycleError("The flow has no version to edit")
        back_to = flow.status
        _transition(flow, "begin_draft", "edit")
        _save_flow(flow)
        try:
            # A savepoint: if another Edit won the race despite the row lock
            # (flow_one_draft rejects a second draft), open the draft it made.
            with transaction.atomic():
                draft = _new_draft_from(flow, source, user=user)
                created = True
        except IntegrityError:
            draft = flow.draft
            created = False
            if draft is None:
                raise
        if back_to in NEVER_LAUNCHED:
            back_to = Status.READY if draft.is_valid else Status.DRAFT
        flow.finish_draft(back_to=back_to)
        _save_flow(flow)
        if created:
            audit.log(
                "flow.draft_created",
                user=user,
                subject=flow,
                data={"version": draft.number, "from_version": source.number},
            )
    return draft


def delete_draft(*, flow: Flow, user=None) -> None:
    """Discard the draft of a live flow. A flow that was never launched has
    nothing but its draft, so that is refused (archive the flow instead)."""
    user = _user_or_none(user)
    with transaction.atomic():
        flow = _lock(flow)
        if flow.status in NEVER_LAUNCHED:
            raise LifecycleError(
                "Cannot delete the draft of a flow that was never launched: the draft is all it has "
                "(archive the flow instead)"
            )
        if flow.status not in LIVE:
            raise _refusal("delete the draft of", flow, LIVE)
        draft = flow.draft
        if draft is None:
            raise LifecycleError("The flow has no draft to delete")
        number = draft.number
        draft.delete()
        _save_flow(flow)
        audit.log("flow.draft_deleted", user=user, subject=flow, data={"version": number})


def can_delete(flow: Flow) -> bool:
    """Only a flow that never ran a launched version may be deleted: one that
    did has runs, launches and statistics that must stay explainable (archive
    it instead)."""
    return (
        flow.live_version_id is None and not flow.versions.filter(state=FlowVersion.State.LAUNCHED).exists()
    )


def delete_flow(*, flow: Flow, user=None) -> None:
    """Delete a never-launched flow with its versions. Its audit entries stay
    (the log outlives its subjects), and the deletion is one of them."""
    user = _user_or_none(user)
    with transaction.atomic():
        flow = _lock(flow)
        if not can_delete(flow):
            raise LifecycleError("Cannot delete a flow that was launched: archive it instead")
        audit.log(
            "flow.deleted", user=user, subject=flow, subject_repr=f"flow #{flow.pk}", data={"name": flow.name}
        )
        flow.delete()


def _copy_name(name: str) -> str:
    suffix = " (copy)"
    return name[: MAX_NAME_LENGTH - len(suffix)] + suffix


def duplicate_flow(*, flow: Flow, user=None) -> Flow:
    """A new flow "<name> (copy)" whose version 1 copies the draft if there is
    one, else the live version; it lands in draft or ready by validity."""
    user = _user_or_none(user)
    with transaction.atomic():
        original = Flow.objects.get(pk=flow.pk)
        source = original.draft or original.live_version or original.versions.order_by("-number").first()
        if source is None:
            raise LifecycleError("The flow has no version to copy")
        name = _copy_name(original.name)
        doc = json.loads(source.document_json)
        doc["name"] = name  # keeps the key's place, so the copy reads like the original
        copy = Flow.objects.create(name=name, description=original.description, owner=user)
        copy.begin_draft()
        _save_flow(copy)
        draft = FlowVersion(flow=copy, number=1, created_by=user)
        _write_draft(draft, doc)
        copy.finish_draft(back_to=Status.READY if draft.is_valid else Status.DRAFT)
        _save_flow(copy)
        audit.log(
            "flow.duplicated",
            user=user,
            subject=copy,
            data={"from_flow": original.pk, "from_version": source.number},
        )
    return copy


# --- Export ------------------------------------------------------------------


def export_document(*, flow: Flow, version: str | int = "live") -> dict:
    """The document of one version exactly as it was imported or saved:
    version "live", "draft" or a number. VersionNotFound if there is none."""
    from flows.selectors import get_version

    return json.loads(get_version(flow=flow, number=version).document_json)


def rename_flow(*, flow: Flow, name: str | None = None, description: str | None = None, user=None) -> None:
    """Rename and describe a flow. The draft's document (if the flow has one
    that may be written) gets the same name and description, so that saving
    or launching the draft later does not bring the old name back; launched
    versions are frozen and keep theirs."""
    with transaction.atomic():
        flow = Flow.objects.select_for_update().get(pk=flow.pk)
        draft = flow.draft
        if draft is not None and flow.status in DRAFT_WRITABLE:
            document = json.loads(draft.document_json)
            if name is not None:
                document["name"] = name
            if description is not None:
                document["description"] = description
            save_draft(flow=flow, document=document, user=user)
        changes: dict[str, Any] = {"updated_at": now()}
        if name is not None:
            changes["name"] = name
        if description is not None:
            changes["description"] = description
        Flow.objects.filter(pk=flow.pk).update(**changes)
        audit.log(
            "flow.renamed",
            user=_user_or_none(user),
            subject=flow,
            data={
                key: value
                for key, value in (("name", name), ("description", description))
                if value is not None
            },
        )
