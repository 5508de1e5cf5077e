"""REST API v1: message templates, keyed by slug (SPEC §11). A webhook's
`secret` is write-only: generated when not given, never shown again."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from channels.models import Template
from channels.rendering import _compile as compile_template
from maestra.api.errors import ApiError, Conflict, error
from maestra.api.serializers import StrictMixin, require_object
from maestra.api.views import ApiMixin, ApiView, get_or_404

TEXT_FIELDS = ("subject", "text", "html", "url")


class TemplateInputSerializer(StrictMixin, serializers.ModelSerializer):
    secret = serializers.CharField(
        write_only=True,
        required=False,
        min_length=16,
        max_length=100,
        help_text="webhooks: the HMAC-SHA256 signing secret; generated when not given; never returned",
    )
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, help_text="webhooks: header templates"
    )

    class Meta:
        model = Template
        fields = [
            "slug",
            "name",
            "channel",
            "purpose",
            "subject",
            "text",
            "html",
            "method",
            "url",
            "headers",
            "secret",
        ]

    def validate(self, attrs):
        merged = {**self._current(), **attrs}
        problems: dict[str, list[str]] = {}
        for field in TEXT_FIELDS:
            source = merged.get(field) or ""
            compiled = compile_template(source, field == "html") if source else None
            if isinstance(compiled, str):
                problems[field] = [f"template syntax error: {compiled}"]
        for name, source in (merged.get("headers") or {}).items():
            compiled = compile_template(source, False) if source else None
            if isinstance(compiled, str):
                problems[f"headers.{name}"] = [f"template syntax error: {compiled}"]
        channel = merged.get("channel")
        if channel == "webhook" and not (merged.get("url") or "").strip():
            problems["url"] = ["a webhook template needs a url"]
        if channel == "email" and not (merged.get("text") or merged.get("html") or "").strip():
            problems["text"] = ["an email template needs a text or an html body"]
        if channel == "sms" and not (merged.get("text") or "").strip():
            problems["text"] = ["an SMS template needs a text"]
        if problems:
            raise serializers.ValidationError(problems)
        return attrs

    def _current(self) -> dict[str, Any]:
        if self.instance is None:
            return {}
        return {field: getattr(self.instance, field) for field in self.Meta.fields if field != "secret"}


class TemplateOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Template
        fields = [
            "slug",
            "name",
            "channel",
            "purpose",
            "subject",
            "text",
            "html",
            "method",
            "url",
            "headers",
            "created_at",
            "updated_at",
        ]


def _save(serializer: TemplateInputSerializer) -> Template:
    try:
        with transaction.atomic():
            # Without a `secret` the model's default generates one.
            return serializer.save(updated_at=timezone.now())
    except IntegrityError:
        raise Conflict([error("a template with this slug already exists", field="slug")]) from None


EXAMPLES = [
    OpenApiExample(
        "Email",
        value={
            "slug": "confirm",
            "name": "Confirm your subscription",
            "channel": "email",
            "purpose": "service",
            "subject": "Please confirm, {{ customer.first_name }}",
            "text": "Click to confirm.",
            "html": "<p>Click to confirm.</p>",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Webhook",
        value={
            "slug": "crm-sync",
            "name": "Tell the CRM",
            "channel": "webhook",
            "method": "POST",
            "url": "https://crm.example.com/hooks/maestra",
            "headers": {"X-Source": "maestra"},
            "text": '{"customer": "{{ customer.external_id }}"}',
        },
        request_only=True,
    ),
]


class TemplateListView(ApiMixin, generics.ListAPIView):
    serializer_class = TemplateOutputSerializer
    queryset = Template.objects.order_by("slug")

    @extend_schema(operation_id="templates_list", summary="List templates", tags=["templates"])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="templates_create",
        summary="Create a template",
        request=TemplateInputSerializer,
        responses={201: TemplateOutputSerializer, 409: {"$ref": "#/components/schemas/Errors"}},
        examples=EXAMPLES,
        tags=["templates"],
    )
    def post(self, request):
        serializer = TemplateInputSerializer(data=require_object(request.data))
        serializer.is_valid(raise_exception=True)
        template = _save(serializer)
        return Response(TemplateOutputSerializer(template).data, status=status.HTTP_201_CREATED)


class TemplateDetailView(ApiView):
    def _get(self, slug: str) -> Template:
        return get_or_404(Template.objects, "template", slug=slug)

    @extend_schema(
        operation_id="template_read",
        summary="Read a template",
        responses=TemplateOutputSerializer,
        tags=["templates"],
    )
    def get(self, request, slug: str):
        return Response(TemplateOutputSerializer(self._get(slug)).data)

    def _update(self, request, slug: str, *, partial: bool):
        template = self._get(slug)
        body = require_object(request.data)
        if "slug" in body and body["slug"] != slug:
            raise ApiError(
                [error("the slug cannot be changed (it is how flows refer to this)", field="slug")]
            )
        serializer = TemplateInputSerializer(template, data={**body, "slug": slug}, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(TemplateOutputSerializer(_save(serializer)).data)

    @extend_schema(
        operation_id="template_replace",
        summary="Update a template (the slug stays; the secret stays unless given)",
        request=TemplateInputSerializer,
        responses=TemplateOutputSerializer,
        tags=["templates"],
    )
    def put(self, request, slug: str):
        return self._update(request, slug, partial=False)

    @extend_schema(
        operation_id="template_update",
        summary="Update some attributes of a template",
        request=TemplateInputSerializer(partial=True),
        responses=TemplateOutputSerializer,
        tags=["templates"],
    )
    def patch(self, request, slug: str):
        return self._update(request, slug, partial=True)

    @extend_schema(
        operation_id="template_delete", summary="Delete a template", responses={204: None}, tags=["templates"]
    )
    def delete(self, request, slug: str):
        self._get(slug).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
