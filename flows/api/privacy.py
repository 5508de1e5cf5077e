"""REST API v1: erase and export a customer (flows/privacy.py)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from customers.models import Customer
from flows.privacy import erase_customers, erased_external_id, export_customer
from maestra.api.views import ApiView, get_or_404

EXPORT_EXAMPLE = {
    "format": "maestra.customer-export/1",
    "exported_at": "2026-06-01T09:00:00+00:00",
    "profile": {
        "external_id": "c-1",
        "email": "ann@example.com",
        "email_valid": True,
        "phone": "",
        "first_name": "Ann",
        "last_name": "",
        "timezone": "Europe/Berlin",
        "fields": {"city": "Berlin"},
        "push_tokens": {},
        "created_at": "2026-05-01T09:00:00+00:00",
        "updated_at": "2026-05-01T09:00:00+00:00",
    },
    "subscriptions": {"email": {"status": "subscribed", "updated_at": "2026-05-01T09:00:00+00:00"}},
    "segments": ["vip"],
    "points_balance": 0,
    "points": [],
    "promo_codes": [],
    "events": [
        {"id": "e-1", "type": "order_created", "occurred_at": "2026-05-02T10:00:00+00:00", "payload": {}}
    ],
    "messages": [],
    "runs": [],
}


class CustomerEraseView(ApiView):
    @extend_schema(
        operation_id="customer_erase",
        summary="Erase a customer's personal data (right to be forgotten)",
        description="Removes the profile's personal data, event payloads, message contents and activity detail; "
        "aggregate statistics stay. The customer's external id becomes `erased-<id>`. No body. Cannot be "
        "undone. See docs/consent.md.",
        request=None,
        responses={
            200: inline_serializer(
                "CustomerEraseResult",
                {"erased": serializers.BooleanField(), "external_id": serializers.CharField()},
            ),
            404: {"$ref": "#/components/schemas/Errors"},
        },
        examples=[
            OpenApiExample(
                "Erased",
                value={"erased": True, "external_id": "erased-42"},
                response_only=True,
                status_codes=["200"],
            ),
        ],
        tags=["customers"],
    )
    def post(self, request, external_id: str):
        customer = get_or_404(Customer.objects, "customer", external_id=external_id)
        erase_customers(customer_ids=[customer.pk], user=request.user)
        return Response({"erased": True, "external_id": erased_external_id(customer.pk)})


class CustomerExportView(ApiView):
    @extend_schema(
        operation_id="customer_export",
        summary="Export everything stored about a customer",
        responses={200: OpenApiTypes.OBJECT, 404: {"$ref": "#/components/schemas/Errors"}},
        examples=[OpenApiExample("Export", value=EXPORT_EXAMPLE, response_only=True, status_codes=["200"])],
        tags=["customers"],
    )
    def get(self, request, external_id: str):
        customer = get_or_404(Customer.objects, "customer", external_id=external_id)
        return Response(export_customer(customer=customer))
