"""REST API v1: flows as documents, their lifecycle, versions, statistics and
audience preview; event ingestion; a customer's activity (SPEC §11).

Thin views: the lifecycle services (flows/lifecycle/), the ingestion
service (flows/engine/ingestion.py) and the read side (flows/selectors/) do
the work; the shapes are flows/api/serializers.py; the exception handler in
maestra/api/errors.py turns their errors into the API's JSON contract.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import F, Prefetch
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response

from customers.models import Customer
from flows.api.schema import DOCUMENT_REF, SPEC_EXAMPLE
from flows.api.serializers import (
    ActivityQuerySerializer,
    ActivitySerializer,
    AudiencePreviewSerializer,
    AudienceQuerySerializer,
    DocumentQuerySerializer,
    EventsInputSerializer,
    EventsResultSerializer,
    FlowOutputSerializer,
    FlowUpdateSerializer,
    StatsQuerySerializer,
    StatsSerializer,
    VersionSerializer,
)
from flows.document import parse_document
from flows.engine.ingestion import MAX_EVENTS, ingest_events
from flows.lifecycle import delete, drafts, launch, transitions
from flows.models import Flow, FlowVersion
from flows.selectors import activity, stats
from flows.selectors.audience import flow_audience_preview
from flows.selectors.goals import goal_stats  # goal hook
from flows.selectors.versions import version_history
from maestra.api.errors import ApiError, error
from maestra.api.schema import ERRORS_REF
from maestra.api.serializers import require_object
from maestra.api.views import ApiMixin, ApiView, get_or_404

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
        flow = drafts.create_flow(document=parse_document(request.data), user=request.user)
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
        drafts.rename_flow(flow=flow, user=request.user, **serializer.validated_data)
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
        return Response(drafts.export_document(flow=flow, version=number))


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
            drafts.edit_flow(flow=flow, user=request.user)
        drafts.save_draft(flow=flow, document=document, user=request.user)
        return Response(flow_output(flow.pk))

    @extend_schema(
        operation_id="flow_draft_delete",
        summary="Discard the draft of a live flow",
        responses={204: None, 409: ERRORS_REF},
        tags=FLOW_TAGS,
    )
    def delete(self, request, flow_id: int):
        delete.delete_draft(flow=_flow(flow_id), user=request.user)
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


# The lifecycle buttons of the API, one POST each: (URL name, service, status on success,
# summary, description). Wired in maestra/api/urls.py from ACTION_VIEWS, in this order.
FLOW_ACTIONS = [
    (
        "launch",
        launch.launch_flow,
        status.HTTP_202_ACCEPTED,
        "Launch the draft",
        "The flow goes to `launching`; a django-q2 task (or the next flows_tick) makes the draft "
        "the live version. A draft with errors → 409 listing them (with their node).",
    ),
    (
        "test",
        launch.start_test,
        status.HTTP_200_OK,
        "Launch the draft as a test",
        "Only while no live version runs (status ready). Messages are rendered, not sent.",
    ),
    (
        "stop-test",
        transitions.stop_test,
        status.HTTP_200_OK,
        "Stop the test",
        "Test runs stop; a new draft copied from the test version lets you go on editing.",
    ),
    (
        "pause",
        transitions.pause_flow,
        status.HTTP_200_OK,
        "Pause an active flow",
        "No new runs; waiting runs stay where they are.",
    ),
    ("resume", transitions.resume_flow, status.HTTP_200_OK, "Resume a paused flow", ""),
    (
        "archive",
        transitions.archive_flow,
        status.HTTP_200_OK,
        "Archive a flow (final)",
        "Runs in flight stop with `flow_stopped`.",
    ),
    (
        "duplicate",
        drafts.duplicate_flow,
        status.HTTP_201_CREATED,
        "Duplicate a flow",
        "A new flow '<name> (copy)' from the draft (or the live version); answers with the copy.",
    ),
]
ACTION_VIEWS: dict[str, type[ApiView]] = {
    name: _action_view(name, service, code=code, summary=summary, description=description)
    for name, service, code, summary, description in FLOW_ACTIONS
}


class FlowVersionsView(ApiMixin, generics.ListAPIView):
    serializer_class = VersionSerializer
    queryset = FlowVersion.objects.none()  # the rows come from flows.selectors.versions.version_history

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
        preview = flow_audience_preview(
            flow=flow,
            now=timezone.now(),
            version=query.validated_data.get("version"),
            rule=query.validated_data.get("rule"),
            sample=query.validated_data["sample"],
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
