"""REST API v1: flows as documents, their lifecycle, versions, statistics and
audience preview; event ingestion; a customer's activity (SPEC §11).

Thin views: the lifecycle services (flows/lifecycle.py), the ingestion
service (flows/ingestion.py) and the read-side modules (flows/selectors.py,
flows/stats.py, flows/activity.py) do the work; the exception handler in
maestra/api/errors.py turns their errors into the API's JSON contract.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import django_filters
from django.db.models import F, Prefetch
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from channels.engagement import EngagementSerializer
from customers.models import Customer
from flows import activity, lifecycle, stats
from flows.api_goals import GoalStatsSerializer  # goal hook
from flows.api_schema import DOCUMENT_REF, SPEC_EXAMPLE
from flows.document import MAX_NAME_LENGTH, parse_document
from flows.goal_stats import goal_stats  # goal hook
from flows.ingestion import MAX_EVENTS, ingest_events
from flows.models import Flow, FlowVersion
from flows.selectors import (
    AUDIENCE_SAMPLE_SIZE,
    audience_preview,
    get_version,
    rule_audience,
    version_history,
)
from maestra.api.errors import ApiError, error
from maestra.api.parsers import parse_json
from maestra.api.schema import ERRORS_REF
from maestra.api.serializers import StrictMixin, require_object
from maestra.api.views import ApiMixin, ApiView, get_or_404

VERSION_PATTERN = r"^(live|draft|[0-9]{1,9})$"
DEFAULT_STATS_PERIOD = timedelta(days=7)

# --- Serializers (shapes only) ------------------------------------------------


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


class StatsSerializer(serializers.Serializer):
    flow = serializers.IntegerField()
    start = serializers.DateTimeField(source="from")
    end = serializers.DateTimeField(source="to")
    test = serializers.BooleanField()
    start_node = serializers.CharField(allow_null=True)
    start_entered = serializers.IntegerField()
    nodes = NodeStatsSerializer(many=True)
    goal = GoalStatsSerializer(
        allow_null=True, help_text="the flow's goal (SPEC §13); null without one"
    )  # goal hook


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
    """Documentation of one event; flows.ingestion validates."""

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


# --- Reading flows ------------------------------------------------------------------


def flows_queryset():
    """Flows with their live version number and their draft, in two queries."""
    drafts = FlowVersion.objects.filter(state=FlowVersion.State.DRAFT).only(
        "id", "flow_id", "number", "errors", "updated_at"
    )
    return (
        Flow.objects.order_by("-id")
        .annotate(live_number=F("live_version__number"))
        .prefetch_related(Prefetch("versions", queryset=drafts, to_attr="draft_rows"))
    )


def flow_row(flow: Flow) -> dict[str, Any]:
    draft = flow.draft_rows[0] if flow.draft_rows else None
    errors = list(draft.errors or []) if draft else []
    return {
        "id": flow.pk,
        "name": flow.name,
        "description": flow.description,
        "status": flow.status,
        "live_version": flow.live_number,
        "draft": {
            "version": draft.number,
            "valid": not errors,
            "errors": errors,
            "updated_at": draft.updated_at,
        }
        if draft
        else None,
        "errors": errors,
        "created_at": flow.created_at,
        "updated_at": flow.updated_at,
    }


def flow_output(flow_id: int) -> dict[str, Any]:
    return FlowOutputSerializer(flow_row(flows_queryset().get(pk=flow_id))).data


class FlowFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=Flow.Status.choices, help_text="one or more statuses"
    )
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="part of the name")

    class Meta:
        model = Flow
        fields = ["status", "name"]


FLOW_TAGS = ["flows"]


class FlowListView(ApiMixin, generics.ListAPIView):
    serializer_class = FlowOutputSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = FlowFilter

    def get_queryset(self):
        return flows_queryset()

    @extend_schema(operation_id="flows_list", summary="List flows (filter by status)", tags=FLOW_TAGS)
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(
            FlowOutputSerializer([flow_row(flow) for flow in page], many=True).data
        )

    @extend_schema(
        operation_id="flows_create",
        summary="Create a flow from a document",
        description="A malformed document (wrong types, unknown format) is refused with 400 and stores "
        "nothing. A well-formed one is stored as version 1, the draft; if it has semantic errors "
        "(unknown template, unreachable node, ...) the flow is an invalid draft and `errors` lists them "
        "with their node.",
        request={"application/json": DOCUMENT_REF},
        responses={201: FlowOutputSerializer},
        examples=[OpenApiExample("SPEC §11 example", value=SPEC_EXAMPLE, request_only=True)],
        tags=FLOW_TAGS,
    )
    def post(self, request):
        flow = lifecycle.create_flow(document=parse_document(request.data), user=request.user)
        return Response(flow_output(flow.pk), status=status.HTTP_201_CREATED)


def _flow(flow_id: int) -> Flow:
    return get_or_404(Flow.objects, "flow", id=flow_id)


class FlowDetailView(ApiView):
    @extend_schema(
        operation_id="flow_read", summary="Read a flow", responses=FlowOutputSerializer, tags=FLOW_TAGS
    )
    def get(self, request, flow_id: int):
        return Response(FlowOutputSerializer(flow_row(get_or_404(flows_queryset(), "flow", id=flow_id))).data)

    @extend_schema(
        operation_id="flow_update",
        summary="Rename or describe a flow",
        description="Also writes the name and description into the draft's document, if the flow has a draft.",
        request=FlowUpdateSerializer,
        responses={200: FlowOutputSerializer, 409: ERRORS_REF},
        examples=[OpenApiExample("Rename", value={"name": "Double opt-in"}, request_only=True)],
        tags=FLOW_TAGS,
    )
    def patch(self, request, flow_id: int):
        flow = _flow(flow_id)
        serializer = FlowUpdateSerializer(data=require_object(request.data))
        serializer.is_valid(raise_exception=True)
        lifecycle.rename_flow(flow=flow, user=request.user, **serializer.validated_data)
        return Response(flow_output(flow.pk))


class FlowDocumentView(ApiView):
    @extend_schema(
        operation_id="flow_document",
        summary="Export a version's document",
        description="Exactly the document that was imported or saved.",
        parameters=[DocumentQuerySerializer],
        responses={200: DOCUMENT_REF},
        tags=FLOW_TAGS,
    )
    def get(self, request, flow_id: int):
        flow = _flow(flow_id)
        query = DocumentQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        number = query.validated_data.get("version") or ("live" if flow.live_version_id else "draft")
        return Response(lifecycle.export_document(flow=flow, version=number))


class FlowDraftView(ApiView):
    @extend_schema(
        operation_id="flow_draft_save",
        summary="Replace the draft (creating it on a live flow)",
        description="Returns the flow with the draft's validation errors. A malformed document → 400; a "
        "flow whose draft cannot be written now (launching, testing, archived) → 409.",
        request={"application/json": DOCUMENT_REF},
        responses={200: FlowOutputSerializer, 409: ERRORS_REF},
        examples=[OpenApiExample("SPEC §11 example", value=SPEC_EXAMPLE, request_only=True)],
        tags=FLOW_TAGS,
    )
    def put(self, request, flow_id: int):
        flow = _flow(flow_id)
        document = parse_document(request.data)
        if flow.is_live and flow.draft is None:
            lifecycle.edit_flow(flow=flow, user=request.user)
        lifecycle.save_draft(flow=flow, document=document, user=request.user)
        return Response(flow_output(flow.pk))

    @extend_schema(
        operation_id="flow_draft_delete",
        summary="Discard the draft of a live flow",
        responses={204: None, 409: ERRORS_REF},
        tags=FLOW_TAGS,
    )
    def delete(self, request, flow_id: int):
        lifecycle.delete_draft(flow=_flow(flow_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _action_view(name: str, service, *, code: int, summary: str, description: str) -> type[ApiView]:
    def post(self, request, flow_id: int):
        result = service(flow=_flow(flow_id), user=request.user)
        return Response(flow_output(result.pk), status=code)

    post = extend_schema(
        operation_id=f"flow_{name.replace('-', '_')}",
        summary=summary,
        description=description,
        request=None,
        responses={code: FlowOutputSerializer, 409: ERRORS_REF},
        tags=FLOW_TAGS,
    )(post)
    return type(f"Flow{name.title().replace('-', '')}View", (ApiView,), {"post": post, "__doc__": summary})


FlowLaunchView = _action_view(
    "launch",
    lifecycle.launch_flow,
    code=status.HTTP_202_ACCEPTED,
    summary="Launch the draft",
    description="The flow goes to `launching`; a django-q2 task (or the next flows_tick) makes the draft "
    "the live version. A draft with errors → 409 listing them (with their node).",
)
FlowTestView = _action_view(
    "test",
    lifecycle.start_test,
    code=status.HTTP_200_OK,
    summary="Launch the draft as a test",
    description="Only while no live version runs (status ready). Messages are rendered, not sent.",
)
FlowStopTestView = _action_view(
    "stop-test",
    lifecycle.stop_test,
    code=status.HTTP_200_OK,
    summary="Stop the test",
    description="Test runs stop; a new draft copied from the test version lets you go on editing.",
)
FlowPauseView = _action_view(
    "pause",
    lifecycle.pause_flow,
    code=status.HTTP_200_OK,
    summary="Pause an active flow",
    description="No new runs; waiting runs stay where they are.",
)
FlowResumeView = _action_view(
    "resume", lifecycle.resume_flow, code=status.HTTP_200_OK, summary="Resume a paused flow", description=""
)
FlowArchiveView = _action_view(
    "archive",
    lifecycle.archive_flow,
    code=status.HTTP_200_OK,
    summary="Archive a flow (final)",
    description="Runs in flight stop with `flow_stopped`.",
)
FlowDuplicateView = _action_view(
    "duplicate",
    lifecycle.duplicate_flow,
    code=status.HTTP_201_CREATED,
    summary="Duplicate a flow",
    description="A new flow '<name> (copy)' from the draft (or the live version); answers with the copy.",
)


class FlowVersionsView(ApiMixin, generics.ListAPIView):
    serializer_class = VersionSerializer
    queryset = FlowVersion.objects.none()  # the rows come from flows.selectors.version_history

    @extend_schema(operation_id="flow_versions", summary="Version history, newest first", tags=FLOW_TAGS)
    def get(self, request, flow_id: int):
        page = self.paginate_queryset(version_history(flow=_flow(flow_id)))
        return self.get_paginated_response(VersionSerializer(page, many=True).data)


class FlowStatsView(ApiView):
    @extend_schema(
        operation_id="flow_stats",
        summary="Run statistics per node for a period",
        description="Entered, exits per port, stops per reason (hourly buckets), runs waiting now, messages "
        "by status, and percentages of the start node's entered.",
        parameters=[StatsQuerySerializer],
        responses=StatsSerializer,
        tags=FLOW_TAGS,
    )
    def get(self, request, flow_id: int):
        flow = _flow(flow_id)
        query = StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        result = stats.flow_stats(flow=flow, since=data["start"], until=data["end"], is_test=data["test"])
        result["goal"] = goal_stats(
            flow=flow, since=data["start"], until=data["end"], is_test=data["test"]
        )  # goal hook
        return Response(StatsSerializer(result).data)


class FlowAudiencePreviewView(ApiView):
    @extend_schema(
        operation_id="flow_audience_preview",
        summary="How many customers a schedule start (or a rule) would take now",
        description="Without `rule`: the audience of the version's schedule start (segment and/or rule). "
        "With `rule` (JSON, customer paths only): the customers matching it. Customers the flow's "
        "launch limit blocks now are counted apart. A flow started by events has no audience to "
        "preview (409).",
        parameters=[
            OpenApiParameter(
                "version", OpenApiTypes.STR, description="live, draft or a number (default: draft, else live)"
            ),
            OpenApiParameter(
                "rule",
                OpenApiTypes.STR,
                description='a rule as JSON, e.g. {"field": "customer.fields.tier", "op": "eq", "value": "gold"}',
            ),
        ],
        responses={200: AudiencePreviewSerializer, 409: ERRORS_REF},
        tags=FLOW_TAGS,
    )
    def get(self, request, flow_id: int):
        flow = _flow(flow_id)
        query = AudienceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        number = query.validated_data.get("version") or ("draft" if flow.draft else "live")
        version = get_version(flow=flow, number=number)
        audience = None
        if "rule" in query.validated_data:
            # The API's JSON reader: NaN, NUL and lone surrogates are refused
            # here like in a body, not at the database.
            audience = rule_audience(parse_json(query.validated_data["rule"], field="rule"))
        preview = audience_preview(
            version=version,
            now=timezone.now(),
            audience=audience,
            sample_size=AUDIENCE_SAMPLE_SIZE if query.validated_data["sample"] else 0,
        )
        return Response(AudiencePreviewSerializer(preview).data)


# --- Events and activity ---------------------------------------------------------------


class EventsView(ApiView):
    @extend_schema(
        operation_id="events_ingest",
        summary="Send a batch of events",
        description=f"Up to {MAX_EVENTS} events. All or nothing: any invalid item → 400 listing every "
        "problem with its index, nothing stored. An `id` already stored (or repeated in the batch) is a "
        "duplicate and ignored, so a batch can always be retried. An unknown customer is created.",
        request=EventsInputSerializer,
        responses={202: EventsResultSerializer},
        examples=[
            OpenApiExample(
                "An order",
                value={
                    "events": [
                        {
                            "id": "order-1001",
                            "customer": "c-42",
                            "type": "order_created",
                            "occurred_at": "2025-06-06T20:00:00+02:00",
                            "payload": {"total": 59.9, "currency": "EUR"},
                        }
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "Result", value={"accepted": 1, "duplicates": 0}, response_only=True, status_codes=["202"]
            ),
        ],
        tags=["events"],
    )
    def post(self, request):
        body = require_object(request.data)
        problems = [error("unknown field", field=str(key)) for key in body if key != "events"]
        if "events" not in body:
            problems.append(error("required: a list of events", field="events"))
        if problems:
            raise ApiError(problems)
        result = ingest_events(items=body["events"])
        return Response(EventsResultSerializer(result).data, status=status.HTTP_202_ACCEPTED)


class CustomerActivityView(ApiView):
    @extend_schema(
        operation_id="customer_activity",
        summary="A customer's runs, nodes passed and messages",
        description="Newest run first, paginated like every list (the runs are under `runs`).",
        parameters=[ActivityQuerySerializer],
        responses=ActivitySerializer,
        tags=["customers"],
    )
    def get(self, request, external_id: str):
        customer = get_or_404(Customer.objects, "customer", external_id=external_id)
        query = ActivityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        runs = activity.customer_runs(customer_id=customer.pk, flow_id=query.validated_data.get("flow"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(runs, request, view=self)
        return Response(
            ActivitySerializer(
                {
                    "count": paginator.page.paginator.count,
                    "next": paginator.get_next_link(),
                    "previous": paginator.get_previous_link(),
                    "runs": activity.describe_runs(runs=list(page)),
                }
            ).data
        )
