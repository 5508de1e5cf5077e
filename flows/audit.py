"""The audit actions flows writes (maestra/audit): the lifecycle of a flow,
a failed schedule fire, a customer's erasure and the alerts. Registered in
FlowsConfig.ready; written with maestra.audit.log.log."""

from __future__ import annotations

FLOW_ACTIONS = (
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
    "flow.deleted",
    "flow.schedule_failed",
    "customer.erased",
    "alert.promo_pool_low",
    "alert.limitation_low",
    # An A/B node's winner, picked by the engine (flows/engine/ab_winner.py).
    "flow.ab_winner",
)
