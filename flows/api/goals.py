"""The goal statistics in the flow stats API (SPEC §13): serializers of the
`goal` member of GET /api/v1/flows/{id}/stats, filled by flows/selectors/goals.py.
Kept apart from serializers.py so the stats serializer needs one line for them."""

from __future__ import annotations

from rest_framework import serializers


class GoalFiguresSerializer(serializers.Serializer):
    entered = serializers.IntegerField(help_text="runs (that entered in the period) counted here")
    converted = serializers.IntegerField(
        help_text="of those, runs whose customer met the goal within its window"
    )
    rate = serializers.FloatField(allow_null=True, help_text="converted / entered, 0 to 1; null without runs")
    value = serializers.FloatField(help_text="summed value of the conversions (the goal's value_field)")


class GoalNodeSerializer(GoalFiguresSerializer):
    ports = serializers.DictField(
        child=GoalFiguresSerializer(),
        help_text="per exit port (A/B variant, splitter branch, condition answer): runs that left by it",
    )


class GoalStatsSerializer(GoalFiguresSerializer):
    event_type = serializers.CharField()
    window = serializers.CharField(help_text="ISO 8601 duration after entering")
    value_field = serializers.CharField(allow_null=True)
    nodes = serializers.DictField(
        child=GoalNodeSerializer(), help_text="per node key: runs that passed it, converted after reaching it"
    )
