"""REST API v1: the provider events endpoint (channels/inbound.py)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from channels.api_schema import PROVIDER_EVENTS_EXAMPLES
from channels.inbound import HEADER, process_provider_events, secret_ok, validate
from maestra.api.errors import ApiError, error
from maestra.api.views import ApiView


class ProviderEventsView(ApiView):
    # No API key: providers call this with the shared secret alone.
    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    # Left out of the OpenAPI schema: it is not authenticated by an API key
    # (the schema's contract for every /api/v1/ operation) but by the
    # provider's shared secret; docs/consent.md documents it.
    @extend_schema(
        exclude=True,
        operation_id="inbound_provider_events",
        summary="Bounces, complaints and SMS replies from providers",
        description="Authenticated by the header `X-Maestra-Inbound-Secret` (settings MAESTRA_INBOUND_SECRET), "
        "not by an API key; a wrong or missing secret → 403. Up to 1,000 events. See docs/consent.md.",
        auth=[],
        request=inline_serializer(
            "ProviderEventsInput",
            {"events": serializers.ListField(child=serializers.DictField())},
        ),
        responses={
            200: inline_serializer(
                "ProviderEventsResult",
                {
                    "bounced_hard": serializers.IntegerField(),
                    "bounced_soft": serializers.IntegerField(),
                    "complaints": serializers.IntegerField(),
                    "sms_stops": serializers.IntegerField(),
                    "ignored": serializers.IntegerField(),
                },
            ),
            403: {"$ref": "#/components/schemas/Errors"},
        },
        examples=PROVIDER_EVENTS_EXAMPLES,
        tags=["inbound"],
    )
    def post(self, request):
        if not secret_ok(request.META.get(HEADER)):
            raise ApiError(
                [error("missing or wrong X-Maestra-Inbound-Secret", field="X-Maestra-Inbound-Secret")],
                status_code=403,
            )
        body = request.data
        if not isinstance(body, dict):
            raise ApiError([error("must be a JSON object", field="")])
        unknown = [error("unknown field", field=str(k)) for k in body if k != "events"]
        if unknown:
            raise ApiError(unknown)
        # InvalidProviderEvents is an ApplicationError: the handler answers 400 with its list.
        events = validate(body.get("events"))
        return Response(process_provider_events(events=events))
