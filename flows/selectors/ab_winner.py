"""The recorded A/B winners of a flow, for the statistics (SPEC §13): the
stats API (flows.selectors.stats.flow_stats, per node `ab_winner`) and,
through it, the canvas. One query per flow. Written by
flows/engine/ab_winner.py; the API's shape is flows.api.serializers.ABWinnerSerializer."""

from __future__ import annotations

from typing import Any

from flows.models import ABWinner


def winners_by_node(*, flow_id: int) -> dict[str, dict[str, Any]]:
    """{node_key: {variant, metric, confidence, p_value, decided_at, counts}}."""
    rows = ABWinner.objects.filter(flow_id=flow_id).values(
        "node_key", "variant", "metric", "confidence", "p_value", "decided_at", "counts"
    )
    return {row.pop("node_key"): row for row in rows}
