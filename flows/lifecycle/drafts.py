"""Drafts: create a flow, autosave its draft, open a draft of a live flow,
duplicate, rename, export (SPEC §3, §4).

Launched versions are frozen: these services never write a launched version's
document, settings or Node/Edge rows (FlowVersion.save() guards the row as
well); write_draft is the one place a draft's document is stored."""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.timezone import now

from flows.document import MAX_NAME_LENGTH, document_settings, dump_document, graph_rows, parse_document
from flows.document.validate import validate_document
from flows.errors import DraftConflict, LifecycleError
from flows.lifecycle.state import (
    DRAFT_WRITABLE,
    NEVER_LAUNCHED,
    SETTINGS_FIELDS,
    Status,
    allowed_from,
    lock_flow,
    refused,
    save_flow,
    transition,
    user_or_none,
)
from flows.models import Edge, Flow, FlowVersion, FrozenVersionError, Node
from flows.selectors.versions import get_version
from maestra.audit import log as audit


def next_number(flow: Flow) -> int:
    return (flow.versions.aggregate(top=Max("number"))["top"] or 0) + 1


def flow_name(doc: dict) -> str:
    return doc["name"][:MAX_NAME_LENGTH]


def write_draft(version: FlowVersion, doc: dict, *, text: str | None = None) -> None:
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
    replace_graph(version, doc)


def replace_graph(version: FlowVersion, doc: dict) -> None:
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


def new_draft_from(flow: Flow, source: FlowVersion, *, user) -> FlowVersion:
    """A new draft of `flow` holding a copy of `source`'s document, validated
    against today's templates, segments and pools."""
    draft = FlowVersion(flow=flow, number=next_number(flow), created_by=user)
    write_draft(draft, json.loads(source.document_json), text=source.document_json)
    return draft


def revalidate(draft: FlowVersion) -> list[dict]:
    """Validate the draft again: templates, segments or pools it refers to may
    have appeared or disappeared since it was saved."""
    errors = validate_document(draft.document)
    if errors != draft.errors:
        draft.errors = errors
        draft.updated_at = now()
        draft.save(update_fields=["errors", "updated_at"])
    return errors


def follow_validity(flow: Flow, draft: FlowVersion) -> None:
    """A never-launched flow is `ready` exactly when its draft is valid."""
    if flow.status == Status.DRAFT and draft.is_valid:
        flow.mark_ready()
    elif flow.status == Status.READY and not draft.is_valid:
        flow.mark_invalid()


def create_flow(*, document: dict | str, user=None) -> Flow:
    """A new flow from a document; version 1 is its draft. A malformed document
    raises flows.document.DocumentError; a well-formed one with semantic errors
    is stored as an invalid draft (status draft)."""
    doc = parse_document(document)
    user = user_or_none(user)
    with transaction.atomic():
        flow = Flow.objects.create(name=flow_name(doc), owner=user)
        draft = FlowVersion(flow=flow, number=1, created_by=user)
        write_draft(draft, doc)
        follow_validity(flow, draft)
        save_flow(flow)
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
    user = user_or_none(user)
    with transaction.atomic():
        flow = lock_flow(flow)
        if flow.status not in DRAFT_WRITABLE:
            raise refused("save a draft of", flow, DRAFT_WRITABLE)
        draft = flow.draft
        created = draft is None
        if expected_revision is not None and (draft.revision if draft else 0) != expected_revision:
            raise DraftConflict(
                "The draft was changed elsewhere (another tab or person) since this page loaded it",
                revision=draft.revision if draft else 0,
            )
        if created:
            draft = FlowVersion(flow=flow, number=next_number(flow), created_by=user)
        write_draft(draft, doc)
        flow.name = flow_name(doc)
        follow_validity(flow, draft)
        save_flow(flow, "name")
        audit.log(
            "flow.draft_saved",
            user=user,
            subject=flow,
            data={"version": draft.number, "created": created, "errors": len(draft.errors)},
        )
    return draft


def edit_flow(*, flow: Flow, user=None) -> FlowVersion:
    """The flow's one draft: the existing one, or (on a live flow) a new one
    copied from the live version. A second Edit opens the same draft."""
    user = user_or_none(user)
    with transaction.atomic():
        flow = lock_flow(flow)
        if flow.status not in DRAFT_WRITABLE:
            raise refused("edit", flow, allowed_from("begin_draft"))
        existing = flow.draft
        if existing is not None:
            return existing
        source = flow.live_version or flow.versions.order_by("-number").first()
        if source is None:
            raise LifecycleError("The flow has no version to edit")
        back_to = flow.status
        transition(flow, "begin_draft", "edit")
        save_flow(flow)
        try:
            # A savepoint: if another Edit won the race despite the row lock
            # (flow_one_draft rejects a second draft), open the draft it made.
            with transaction.atomic():
                draft = new_draft_from(flow, source, user=user)
                created = True
        except IntegrityError:
            draft = flow.draft
            created = False
            if draft is None:
                raise
        if back_to in NEVER_LAUNCHED:
            back_to = Status.READY if draft.is_valid else Status.DRAFT
        flow.finish_draft(back_to=back_to)
        save_flow(flow)
        if created:
            audit.log(
                "flow.draft_created",
                user=user,
                subject=flow,
                data={"version": draft.number, "from_version": source.number},
            )
    return draft


def _copy_name(name: str) -> str:
    suffix = " (copy)"
    return name[: MAX_NAME_LENGTH - len(suffix)] + suffix


def duplicate_flow(*, flow: Flow, user=None) -> Flow:
    """A new flow "<name> (copy)" whose version 1 copies the draft if there is
    one, else the live version; it lands in draft or ready by validity."""
    user = user_or_none(user)
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
        save_flow(copy)
        draft = FlowVersion(flow=copy, number=1, created_by=user)
        write_draft(draft, doc)
        copy.finish_draft(back_to=Status.READY if draft.is_valid else Status.DRAFT)
        save_flow(copy)
        audit.log(
            "flow.duplicated",
            user=user,
            subject=copy,
            data={"from_flow": original.pk, "from_version": source.number},
        )
    return copy


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
            user=user_or_none(user),
            subject=flow,
            data={
                key: value
                for key, value in (("name", name), ("description", description))
                if value is not None
            },
        )


def export_document(*, flow: Flow, version: str | int = "live") -> dict:
    """The document of one version exactly as it was imported or saved:
    version "live", "draft" or a number. VersionNotFound if there is none."""
    return json.loads(get_version(flow=flow, number=version).document_json)
