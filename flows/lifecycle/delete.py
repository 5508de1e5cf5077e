"""Deleting: the draft of a live flow, or a flow that never ran a launched
version (one that did is archived instead, so its history stays explainable)."""

from __future__ import annotations

from django.db import transaction

from flows.errors import LifecycleError
from flows.lifecycle.state import LIVE, NEVER_LAUNCHED, lock_flow, refused, save_flow, user_or_none
from flows.models import Flow, FlowVersion
from maestra.audit import log as audit


def delete_draft(*, flow: Flow, user=None) -> None:
    """Discard the draft of a live flow. A flow that was never launched has
    nothing but its draft, so that is refused (archive the flow instead)."""
    user = user_or_none(user)
    with transaction.atomic():
        flow = lock_flow(flow)
        if flow.status in NEVER_LAUNCHED:
            raise LifecycleError(
                "Cannot delete the draft of a flow that was never launched: the draft is all it has "
                "(archive the flow instead)"
            )
        if flow.status not in LIVE:
            raise refused("delete the draft of", flow, LIVE)
        draft = flow.draft
        if draft is None:
            raise LifecycleError("The flow has no draft to delete")
        number = draft.number
        draft.delete()
        save_flow(flow)
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
    user = user_or_none(user)
    with transaction.atomic():
        flow = lock_flow(flow)
        if not can_delete(flow):
            raise LifecycleError("Cannot delete a flow that was launched: archive it instead")
        audit.log(
            "flow.deleted", user=user, subject=flow, subject_repr=f"flow #{flow.pk}", data={"name": flow.name}
        )
        flow.delete()
