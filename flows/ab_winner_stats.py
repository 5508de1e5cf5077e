"""The recorded A/B winners of a flow, for the statistics (SPEC §13): the
stats API (flows.stats.flow_stats, per node `ab_winner`) and, through it,
the canvas. One query per flow. Written by flows/engine/ab_winner.py."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from flows.models import ABWinner


def winners_by_node(*, flow_id: int) -> dict[str, dict[str, Any]]:
    """{node_key: {variant, metric, confidence, p_value, decided_at, counts}}."""
    rows = ABWinner.objects.filter(flow_id=flow_id).values(
        "node_key", "variant", "metric", "confidence", "p_value", "decided_at", "counts"
    )
    return {row.pop("node_key"): row for row in rows}


class WinnerCountSerializer(serializers.Serializer):
    variant = serializers.CharField()
    control = serializers.BooleanField()
    entered = serializers.IntegerField()
    converted = serializers.IntegerField(
        help_text="passes followed by the metric's event in the attribution window"
    )
    rate = serializers.FloatField(allow_null=True, help_text="converted / entered (0..1)")
    p_value = serializers.FloatField(allow_null=True, help_text="two-sided p-value against the winner")


class ABWinnerSerializer(serializers.Serializer):
    variant = serializers.CharField(help_text="the winning variant")
    metric = serializers.ChoiceField(choices=["goal", "click"])
    confidence = serializers.FloatField()
    p_value = serializers.FloatField(help_text="the largest p-value of the winner's comparisons")
    decided_at = serializers.DateTimeField()
    counts = WinnerCountSerializer(many=True, help_text="every variant's figures when the winner was picked")
