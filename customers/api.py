"""REST API v1: customers, segments and promo pools (SPEC §11). Thin views:
the writes go through customers.services, which validate batches and answer
with the API's error shape, a customer's profile comes from
customers.selectors; serializers only describe and check shapes."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from customers.errors import InvalidInput, SegmentNotStatic
from customers.models import Channel, Customer, PromoPool, Segment, Subscription
from customers.rules import RuleError, segment_q, validate_rule
from customers.selectors import customer_profile
from customers.services.customers import upsert_customers
from customers.services.promo_codes import add_promo_codes
from customers.services.segments import add_to_segment
from maestra.api.errors import ApiError, Conflict, error
from maestra.api.serializers import StrictMixin, require_object
from maestra.api.views import ApiMixin, ApiView, get_or_404, put_and_patch

MAX_MEMBERS = 10_000
MAX_CODES = 10_000
LOOKUP_CHUNK = 900  # below SQLite's historical limit of 999 query parameters

# --- Customers ------------------------------------------------------------------


class CustomerInputSerializer(serializers.Serializer):
    """Documentation of PUT /customers/{external_id}; customers.services.customers.upsert_customers validates."""

    email = serializers.EmailField(required=False, allow_blank=True, allow_null=True)
    phone = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=32)
    first_name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=150)
    timezone = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text="IANA name, e.g. Europe/Berlin"
    )
    locale = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=35,
        help_text="BCP 47 language tag, e.g. de or pt-BR: templates use its translation",
    )
    fields = serializers.DictField(required=False, help_text="merged into the stored custom fields")
    subscriptions = inline_serializer(
        "CustomerSubscriptionsInput",
        {
            channel: serializers.ChoiceField(choices=Subscription.Status.choices, required=False)
            for channel in Channel.values
        },
        required=False,
        help_text="{channel: status}, for the channels to change",
    )


class CustomerOutputSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    email = serializers.CharField()
    email_valid = serializers.BooleanField()
    phone = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    timezone = serializers.CharField()
    locale = serializers.CharField()
    fields = serializers.DictField()
    subscriptions = serializers.DictField(child=serializers.ChoiceField(choices=Subscription.Status.choices))
    points = serializers.IntegerField(help_text="current balance (entries not expired)")
    segments = serializers.ListField(
        child=serializers.CharField(), help_text="slugs of the static and rule segments the customer is in"
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class CustomerView(ApiView):
    @extend_schema(
        operation_id="customer_read",
        summary="Read a customer: profile, subscriptions, points balance, segments",
        responses={200: CustomerOutputSerializer},
        tags=["customers"],
    )
    def get(self, request, external_id: str):
        customer = get_or_404(Customer.objects, "customer", external_id=external_id)
        return Response(CustomerOutputSerializer(customer_profile(customer)).data)

    @extend_schema(
        operation_id="customer_upsert",
        summary="Create or update a customer by external id",
        description='Attributes left out stay as they are; null or "" clears one. `fields` is merged into '
        "the stored fields. A new customer emits `customer_created`, a changed subscription "
        "`subscription_changed`. 201 when created, 200 when it existed.",
        request=CustomerInputSerializer,
        responses={200: CustomerOutputSerializer, 201: CustomerOutputSerializer},
        examples=[
            OpenApiExample(
                "A new subscriber",
                value={
                    "email": "ada@example.com",
                    "first_name": "Ada",
                    "timezone": "Europe/Berlin",
                    "fields": {"tier": "gold"},
                    "subscriptions": {"email": "requires_confirmation"},
                },
                request_only=True,
            )
        ],
        tags=["customers"],
    )
    def put(self, request, external_id: str):
        body = require_object(request.data)
        if "external_id" in body and body["external_id"] != external_id:
            raise ApiError([error("differs from the external id in the URL", field="external_id")])
        try:
            result = upsert_customers(rows=[{**body, "external_id": external_id}], source="api")
        except InvalidInput as exc:
            # One row: the batch index says nothing here.
            raise ApiError([{k: v for k, v in item.items() if k != "index"} for item in exc.errors]) from None
        customer = Customer.objects.get(pk=result[external_id.strip()])
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(CustomerOutputSerializer(customer_profile(customer)).data, status=code)


# --- Segments ---------------------------------------------------------------------


class SegmentInputSerializer(StrictMixin, serializers.ModelSerializer):
    rule = serializers.JSONField(required=False, allow_null=True, help_text="required for kind=rule")

    class Meta:
        model = Segment
        fields = ["slug", "name", "kind", "rule"]

    def validate(self, attrs):
        kind = attrs.get("kind", self.instance.kind if self.instance else Segment.Kind.STATIC)
        rule = attrs.get("rule", self.instance.rule if self.instance and "kind" not in attrs else None)
        if kind == Segment.Kind.RULE:
            if rule is None:
                raise serializers.ValidationError({"rule": ["a rule segment needs a rule"]})
            problems = validate_rule(rule, allow_event=False)
            if problems:
                raise serializers.ValidationError(
                    {f"rule.{where}" if where else "rule": [message] for where, message in problems}
                )
        elif attrs.get("rule") is not None:
            raise serializers.ValidationError({"rule": ["only a rule segment has a rule"]})
        else:
            attrs["rule"] = None
        return attrs


class SegmentOutputSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Segment.Kind.choices)
    rule = serializers.JSONField(allow_null=True)
    members = serializers.IntegerField(
        allow_null=True,
        help_text="static: member count; rule: customers matching now (detail only, null in lists)",
    )
    created_at = serializers.DateTimeField()


def _segment_row(segment: Segment, *, members: int | None) -> dict[str, Any]:
    return {
        "slug": segment.slug,
        "name": segment.name,
        "kind": segment.kind,
        "rule": segment.rule,
        "members": members,
        "created_at": segment.created_at,
    }


def _member_count(segment: Segment) -> int | None:
    if segment.kind == Segment.Kind.STATIC:
        return segment.memberships.count()
    try:
        return Customer.objects.filter(segment_q(segment)).count()
    except RuleError:
        return None


def _save_segment(serializer: SegmentInputSerializer) -> Segment:
    """Save, and refuse rule segments that end up referring to themselves."""
    try:
        with transaction.atomic():
            segment = serializer.save()
            if segment.kind == Segment.Kind.RULE:
                segment_q(segment)
    except RuleError as exc:
        raise ApiError([error(str(exc), field="rule")]) from None
    except IntegrityError:
        raise Conflict([error("a segment with this slug already exists", field="slug")]) from None
    return segment


class SegmentListView(ApiMixin, generics.ListAPIView):
    serializer_class = SegmentOutputSerializer

    def get_queryset(self):
        return Segment.objects.order_by("slug").annotate(static_members=Count("memberships"))

    @extend_schema(operation_id="segments_list", summary="List segments", tags=["segments"])
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        rows = [
            _segment_row(s, members=s.static_members if s.kind == Segment.Kind.STATIC else None) for s in page
        ]
        return self.get_paginated_response(SegmentOutputSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="segments_create",
        summary="Create a segment",
        request=SegmentInputSerializer,
        responses={201: SegmentOutputSerializer, 409: {"$ref": "#/components/schemas/Errors"}},
        examples=[
            OpenApiExample(
                "Static",
                value={"slug": "newsletter", "name": "Newsletter", "kind": "static"},
                request_only=True,
            ),
            OpenApiExample(
                "Rule",
                value={
                    "slug": "gold",
                    "name": "Gold customers",
                    "kind": "rule",
                    "rule": {"field": "customer.fields.tier", "op": "eq", "value": "gold"},
                },
                request_only=True,
            ),
        ],
        tags=["segments"],
    )
    def post(self, request):
        serializer = SegmentInputSerializer(data=require_object(request.data))
        serializer.is_valid(raise_exception=True)
        segment = _save_segment(serializer)
        return Response(
            SegmentOutputSerializer(_segment_row(segment, members=_member_count(segment))).data,
            status=status.HTTP_201_CREATED,
        )


def _same_slug(body: dict, slug: str) -> dict:
    if "slug" in body and body["slug"] != slug:
        raise ApiError([error("the slug cannot be changed (it is how flows refer to this)", field="slug")])
    return {**body, "slug": slug}


class SegmentDetailView(ApiView):
    def _get(self, slug: str) -> Segment:
        return get_or_404(Segment.objects, "segment", slug=slug)

    @extend_schema(
        operation_id="segment_read",
        summary="Read a segment",
        responses=SegmentOutputSerializer,
        tags=["segments"],
    )
    def get(self, request, slug: str):
        segment = self._get(slug)
        return Response(SegmentOutputSerializer(_segment_row(segment, members=_member_count(segment))).data)

    def _update(self, request, slug: str, *, partial: bool):
        segment = self._get(slug)
        body = _same_slug(require_object(request.data), slug)
        serializer = SegmentInputSerializer(segment, data=body, partial=partial)
        serializer.is_valid(raise_exception=True)
        segment = _save_segment(serializer)
        return Response(SegmentOutputSerializer(_segment_row(segment, members=_member_count(segment))).data)

    put, patch = put_and_patch(
        name="segment",
        noun="segment",
        tags=["segments"],
        request=SegmentInputSerializer,
        response=SegmentOutputSerializer,
    )

    @extend_schema(
        operation_id="segment_delete", summary="Delete a segment", responses={204: None}, tags=["segments"]
    )
    def delete(self, request, slug: str):
        self._get(slug).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


def _customer_ids(external_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(external_ids))
    for start in range(0, len(unique), LOOKUP_CHUNK):
        chunk = unique[start : start + LOOKUP_CHUNK]
        found.update(Customer.objects.filter(external_id__in=chunk).values_list("external_id", "id"))
    return found


class SegmentMembersView(ApiView):
    @extend_schema(
        operation_id="segment_members_add",
        summary="Add customers to a static segment",
        description=f"Up to {MAX_MEMBERS} external ids. Unknown customers are errors (listed with their "
        "index) and nothing is added; customers already in the segment are counted in `already_members`.",
        request=inline_serializer(
            "SegmentMembersInput",
            {"customers": serializers.ListField(child=serializers.CharField(), max_length=MAX_MEMBERS)},
        ),
        responses={
            200: inline_serializer(
                "SegmentMembersResult",
                {"added": serializers.IntegerField(), "already_members": serializers.IntegerField()},
            ),
            409: {"$ref": "#/components/schemas/Errors"},
        },
        examples=[OpenApiExample("Two customers", value={"customers": ["c-1", "c-2"]}, request_only=True)],
        tags=["segments"],
    )
    def post(self, request, slug: str):
        segment = get_or_404(Segment.objects, "segment", slug=slug)
        body = require_object(request.data)
        external_ids = body.get("customers")
        problems = [error("unknown field", field=str(key)) for key in body if key != "customers"]
        if not isinstance(external_ids, list):
            problems.append(error("must be a list of customer external ids", field="customers"))
        elif len(external_ids) > MAX_MEMBERS:
            problems.append(error(f"at most {MAX_MEMBERS} customers per request", field="customers"))
        if problems:
            raise ApiError(problems)
        problems = [
            error("must be a non-empty string", field="customers", index=index)
            for index, value in enumerate(external_ids)
            if not isinstance(value, str) or not value
        ]
        if problems:
            raise ApiError(problems)
        if segment.kind != Segment.Kind.STATIC:
            raise SegmentNotStatic(slug)
        ids = _customer_ids(external_ids)
        problems = [
            error(f"no customer with external id {value!r}", field="customers", index=index)
            for index, value in enumerate(external_ids)
            if value not in ids
        ]
        if problems:
            raise ApiError(problems)
        unique = sorted(set(ids.values()))
        added = add_to_segment(slug=slug, customer_ids=unique)
        return Response({"added": added, "already_members": len(unique) - added})


# --- Promo pools ---------------------------------------------------------------------


class PromoPoolInputSerializer(StrictMixin, serializers.ModelSerializer):
    class Meta:
        model = PromoPool
        fields = ["slug", "name", "alert_below"]


class PromoPoolOutputSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    alert_below = serializers.IntegerField(allow_null=True)
    available = serializers.IntegerField(help_text="codes not issued yet")
    issued = serializers.IntegerField()
    created_at = serializers.DateTimeField()


def _pools():
    return PromoPool.objects.order_by("slug").annotate(
        available=Count("codes", filter=Q(codes__issued_at__isnull=True)),
        issued=Count("codes", filter=Q(codes__issued_at__isnull=False)),
    )


def _save_pool(serializer: PromoPoolInputSerializer) -> PromoPool:
    try:
        with transaction.atomic():
            pool = serializer.save()
    except IntegrityError:
        raise Conflict([error("a promo pool with this slug already exists", field="slug")]) from None
    return _pools().get(pk=pool.pk)


class PromoPoolListView(ApiMixin, generics.ListAPIView):
    serializer_class = PromoPoolOutputSerializer

    def get_queryset(self):
        return _pools()

    @extend_schema(operation_id="promo_pools_list", summary="List promo pools", tags=["promo pools"])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="promo_pools_create",
        summary="Create a promo pool",
        request=PromoPoolInputSerializer,
        responses={201: PromoPoolOutputSerializer, 409: {"$ref": "#/components/schemas/Errors"}},
        examples=[
            OpenApiExample("Welcome", value={"slug": "welcome", "name": "Welcome -10%"}, request_only=True)
        ],
        tags=["promo pools"],
    )
    def post(self, request):
        serializer = PromoPoolInputSerializer(data=require_object(request.data))
        serializer.is_valid(raise_exception=True)
        pool = _save_pool(serializer)
        return Response(PromoPoolOutputSerializer(pool).data, status=status.HTTP_201_CREATED)


class PromoPoolDetailView(ApiView):
    def _get(self, slug: str) -> PromoPool:
        return get_or_404(_pools(), "promo pool", slug=slug)

    @extend_schema(
        operation_id="promo_pool_read",
        summary="Read a promo pool",
        responses=PromoPoolOutputSerializer,
        tags=["promo pools"],
    )
    def get(self, request, slug: str):
        return Response(PromoPoolOutputSerializer(self._get(slug)).data)

    def _update(self, request, slug: str, *, partial: bool):
        pool = self._get(slug)
        body = _same_slug(require_object(request.data), slug)
        serializer = PromoPoolInputSerializer(pool, data=body, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(PromoPoolOutputSerializer(_save_pool(serializer)).data)

    put, patch = put_and_patch(
        name="promo_pool",
        noun="promo pool",
        tags=["promo pools"],
        request=PromoPoolInputSerializer,
        response=PromoPoolOutputSerializer,
    )

    @extend_schema(
        operation_id="promo_pool_delete",
        summary="Delete a promo pool and its codes",
        responses={204: None},
        tags=["promo pools"],
    )
    def delete(self, request, slug: str):
        get_or_404(PromoPool.objects, "promo pool", slug=slug).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class PromoCodesView(ApiView):
    @extend_schema(
        operation_id="promo_codes_upload",
        summary="Upload promo codes to a pool",
        description=f"Up to {MAX_CODES} codes. Codes already in the pool, or repeated in the upload, are "
        "counted as duplicates and ignored.",
        request=inline_serializer(
            "PromoCodesInput",
            {
                "codes": serializers.ListField(
                    child=serializers.CharField(max_length=100), max_length=MAX_CODES
                )
            },
        ),
        responses={
            200: inline_serializer(
                "PromoCodesResult",
                {"added": serializers.IntegerField(), "duplicates": serializers.IntegerField()},
            )
        },
        examples=[
            OpenApiExample("Three codes", value={"codes": ["A1B2", "C3D4", "E5F6"]}, request_only=True)
        ],
        tags=["promo pools"],
    )
    def post(self, request, slug: str):
        get_or_404(PromoPool.objects, "promo pool", slug=slug)
        body = require_object(request.data)
        codes = body.get("codes")
        problems = [error("unknown field", field=str(key)) for key in body if key != "codes"]
        if not isinstance(codes, list):
            problems.append(error("must be a list of codes", field="codes"))
        elif len(codes) > MAX_CODES:
            problems.append(error(f"at most {MAX_CODES} codes per request", field="codes"))
        if problems:
            raise ApiError(problems)
        return Response(add_promo_codes(pool_slug=slug, codes=codes))
