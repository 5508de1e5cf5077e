"""The audit log: who did what to which flow, and when (pretix's log_action).

Services write the entry inside their own transaction, so an action and its
entry are committed (or rolled back) together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.models import AuditEntry

if TYPE_CHECKING:  # pragma: no cover
    from flows.models import Flow

# The actions the lifecycle writes; anything else is a programming error.
ACTIONS = frozenset(
    {
        "flow.created",
        "flow.draft_saved",
        "flow.launch_requested",
        "flow.launched",
        "flow.launch_failed",
        "flow.paused",
        "flow.resumed",
        "flow.archived",
        "flow.draft_created",
        "flow.draft_deleted",
        "flow.duplicated",
        "flow.test_started",
        "flow.test_stopped",
        "flow.renamed",
        "flow.schedule_failed",
        "customer.erased",
        "alert.promo_pool_low",
        "alert.limitation_low",
    }
)


def log_action(action: str, *, user=None, flow: Flow | None = None, data: dict | None = None) -> AuditEntry:
    if action not in ACTIONS:
        raise ValueError(f"Unknown audit action {action!r}")
    # Anonymous users (the API's key-authenticated requests, a command) leave
    # the user empty rather than pointing at a row that does not exist.
    if user is not None and not getattr(user, "pk", None):
        user = None
    return AuditEntry.objects.create(action=action, user=user, flow=flow, data=data or {})
