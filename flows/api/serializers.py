"""The shapes of the flows API (SPEC §11): what its views accept in query
strings and bodies and what they answer. Shapes only: the work is the
services' and the selectors'."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from channels.engagement import EngagementSerializer
from flows.document import MAX_NAME_LENGTH
from flows.engine.ingestion import MAX_EVENTS
from flows.models import Flow, FlowVersion
from flows.selectors.audience import AUDIENCE_SAMPLE_SIZE
from maestra.api.serializers import StrictMixin

VERSION_PATTERN = r"^(live|draft|[0-9]{1,9})$"
DEFAULT_STATS_PERIOD = timedelta(days=7)


class ValidationErrorSerializer(serializers.Serializer):
    node = serializers.CharField(allow_null=True, required=False, help_text="the failing node's key")
    field = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class DraftSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    valid = serializers.BooleanField()
    errors = ValidationErrorSerializer(many=True)
    updated_at = serializers.DateTimeField()


class FlowOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Flow.Status.choices)
    live_version = serializers.IntegerField(allow_null=True, help_text="number of the live (or test) version")
    draft = DraftSerializer(allow_null=True)
    errors = ValidationErrorSerializer(
        many=True, help_text="the draft's validation errors ([] without a draft)"
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class FlowUpdateSerializer(StrictMixin, serializers.Serializer):
    name = serializers.CharField(required=False, max_length=MAX_NAME_LENGTH)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class VersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    state = serializers.ChoiceField(choices=FlowVersion.State.choices)
    is_test = serializers.BooleanField()
    is_live = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    launched_at = serializers.DateTimeField(allow_null=True)
    stopped_at = serializers.DateTimeField(allow_null=True)
    launched_by = serializers.CharField(allow_null=True)
    errors = serializers.IntegerField(help_text="number of validation errors")


class DocumentQuerySerializer(StrictMixin, serializers.Serializer):
    version = serializers.RegexField(
        VERSION_PATTERN,
        required=False,
        help_text="live, draft or a version number (default: live, else draft)",
    )


class StatsQuerySerializer(StrictMixin, serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="default: 7 days before `end`")
    end = serializers.DateTimeField(required=False, help_text="default: now")
    test = serializers.BooleanField(required=False, default=False, help_text="statistics of test runs")

    def validate(self, attrs):
        end = attrs.get("end") or timezone.now()
        try:
            start = attrs.get("start") or end - DEFAULT_STATS_PERIOD
        except OverflowError:
            # The default period reaches before year 1.
            raise serializers.ValidationError({"end": ["too early: give a start as well"]}) from None
        if start >= end:
            raise serializers.ValidationError({"start": ["must be before end"]})
        return {**attrs, "start": start, "end": end}


class PortCountSerializer(serializers.Serializer):
    port = serializers.CharField()
    count = serializers.IntegerField()
    percent = serializers.FloatField(allow_null=True)


class StopCountSerializer(serializers.Serializer):
    reason = serializers.CharField()
    count = serializers.IntegerField()
    percent = serializers.FloatField(allow_null=True)


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


class NodeStatsSerializer(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.CharField(allow_null=True)
    title = serializers.CharField(allow_blank=True)
    entered = serializers.IntegerField()
    entered_percent = serializers.FloatField(allow_null=True, help_text="of the start node's entered")
    exits = PortCountSerializer(many=True)
    stops = StopCountSerializer(many=True)
    waiting_now = serializers.IntegerField()
    messages = serializers.DictField(child=serializers.IntegerField(), help_text="{status: count}")
    email = EngagementSerializer(allow_null=True, help_text="email steps: sent, unique opens and clicks")
    ab_winner = ABWinnerSerializer(allow_null=True, help_text="A/B nodes: the winner, once picked; else null")


class StatsSerializer(serializers.Serializer):
    flow = serializers.IntegerField()
    start = serializers.DateTimeField(source="from")
    end = serializers.DateTimeField(source="to")
    test = serializers.BooleanField()
    start_node = serializers.CharField(allow_null=True)
    start_entered = serializers.IntegerField()
    nodes = NodeStatsSerializer(many=True)


class AudienceQuerySerializer(StrictMixin, serializers.Serializer):
    version = serializers.RegexField(VERSION_PATTERN, required=False)
    rule = serializers.CharField(
        required=False, help_text="a rule (JSON) to count instead of the start's audience"
    )
    sample = serializers.BooleanField(
        required=False, default=False, help_text="also list some of the customers who would enter"
    )


class AudiencePreviewSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=["schedule", "rule"])
    version = serializers.IntegerField(allow_null=True)
    matching = serializers.IntegerField(help_text="customers the audience or rule selects now")
    blocked_by_launch_limit = serializers.IntegerField()
    would_enter = serializers.IntegerField()
    sample = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=f"with ?sample=true: external ids of up to {AUDIENCE_SAMPLE_SIZE} customers who would enter (lowest ids first)",
    )


class EventItemSerializer(serializers.Serializer):
    """Documentation of one event; flows.engine.ingestion validates."""

    id = serializers.CharField(max_length=200, help_text="your event id: re-sending it is ignored")
    customer = serializers.CharField(
        max_length=200, help_text="the customer's external id (created if unknown)"
    )
    type = serializers.CharField(max_length=100)
    occurred_at = serializers.DateTimeField(help_text="ISO 8601 with a UTC offset; naive times are refused")
    payload = serializers.DictField(required=False, allow_null=True, help_text="a JSON object; null is {}")


class EventsInputSerializer(serializers.Serializer):
    events = EventItemSerializer(many=True, max_length=MAX_EVENTS)


class EventsResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class ActivityNodeSerializer(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.CharField()
    at = serializers.DateTimeField()
    exited_at = serializers.DateTimeField(allow_null=True)
    port = serializers.CharField(allow_null=True)
    stop_reason = serializers.CharField(allow_null=True)
    settings = serializers.JSONField(allow_null=True, help_text="the node's config in that version")


class ActivityMessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    node = serializers.CharField(allow_blank=True)
    channel = serializers.CharField()
    template = serializers.CharField()
    status = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)


class ActivityRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    flow = serializers.IntegerField()
    flow_name = serializers.CharField()
    version = serializers.IntegerField()
    is_test = serializers.BooleanField()
    status = serializers.CharField()
    current_node = serializers.CharField(allow_null=True)
    entered_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    stop_reason = serializers.CharField(allow_null=True)
    error = serializers.CharField(
        allow_null=True, help_text="why the engine stopped the run, when stop_reason is engine_error"
    )
    nodes = ActivityNodeSerializer(many=True)
    messages = ActivityMessageSerializer(many=True)


class ActivitySerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    runs = ActivityRunSerializer(many=True)


class ActivityQuerySerializer(StrictMixin, serializers.Serializer):
    flow = serializers.IntegerField(required=False, min_value=1)
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1)
