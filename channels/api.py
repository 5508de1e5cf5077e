"""REST API v1: message templates, keyed by slug (SPEC §11). A webhook's
`secret` is write-only: generated when not given, never shown again."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from channels.api_schema import SEND_TEST_EXAMPLES, TEMPLATE_EXAMPLES
from channels.models import Template
from channels.sendtest import SendTestError, send_test
from channels.templates import TEMPLATE_FIELDS, delete_templates, save_template, template_problems
from channels.tracking import effective_track
from customers.models import Customer
from maestra.api.errors import ApiError, error
from maestra.api.models import ApiKey
from maestra.api.serializers import StrictMixin, require_object
from maestra.api.views import ApiMixin, ApiView, get_or_404, put_and_patch

# What a template's body has, in and out (a webhook's secret only goes in).
FIELDS = list(TEMPLATE_FIELDS)
TRACK_HELP = (
    'email: {"opens": bool, "clicks": bool}; null or a part left out: tracked for marketing, '
    "not for service (docs/channels.md)"
)
TRANSLATIONS_HELP = (
    '{"de": {"subject", "text", "html"}, "pt-BR": {…}}: the text for customers of that locale '
    "(exact, else its language, else the default text)"
)


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
    track = serializers.JSONField(required=False, allow_null=True, help_text=TRACK_HELP)
    translations = serializers.JSONField(required=False, help_text=TRANSLATIONS_HELP)

    class Meta:
        model = Template
        fields = [*FIELDS, "secret"]

    def validate(self, attrs):
        # The check every save of a template goes through (admin form too).
        if problems := template_problems({**self._current(), **attrs}):
            raise serializers.ValidationError({field: [message] for field, message in problems.items()})
        return attrs

    def _current(self) -> dict[str, Any]:
        if self.instance is None:
            return {}
        return {field: getattr(self.instance, field) for field in self.Meta.fields if field != "secret"}


class TemplateOutputSerializer(serializers.ModelSerializer):
    track = serializers.SerializerMethodField(help_text="what is tracked (the purpose's default filled in)")
    translations = serializers.JSONField(help_text=TRANSLATIONS_HELP)

    @extend_schema_field(
        inline_serializer(
            "TemplateTrack", {"opens": serializers.BooleanField(), "clicks": serializers.BooleanField()}
        )
    )
    def get_track(self, template: Template) -> dict[str, bool]:
        return effective_track(track=template.track, purpose=template.purpose, channel=template.channel)

    class Meta:
        model = Template
        fields = [*FIELDS, "created_at", "updated_at"]


def _who(request) -> dict:
    """Who the audit entry names: the staff member of a session, or the API key."""
    if isinstance(request.auth, ApiKey):
        return {"user": None, "actor": f"api key {request.auth.prefix}"}
    return {"user": request.user, "actor": ""}


def _save(request, serializer: TemplateInputSerializer, template: Template | None = None) -> Template:
    """The checked body onto `template` (a new one when None), saved through
    channels.templates; without a `secret` the model's default generates one."""
    template = template or Template()
    for name, value in serializer.validated_data.items():
        setattr(template, name, value)
    return save_template(template=template, **_who(request))


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
        examples=TEMPLATE_EXAMPLES,
        tags=["templates"],
    )
    def post(self, request):
        serializer = TemplateInputSerializer(data=require_object(request.data))
        serializer.is_valid(raise_exception=True)
        template = _save(request, serializer)
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
        return Response(TemplateOutputSerializer(_save(request, serializer, template)).data)

    put, patch = put_and_patch(
        name="template",
        noun="template",
        tags=["templates"],
        request=TemplateInputSerializer,
        response=TemplateOutputSerializer,
        replace_note="the slug stays; the secret stays unless given",
    )

    @extend_schema(
        operation_id="template_delete", summary="Delete a template", responses={204: None}, tags=["templates"]
    )
    def delete(self, request, slug: str):
        delete_templates(templates=[self._get(slug)], **_who(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplateSendTestView(ApiView):
    @extend_schema(
        operation_id="template_send_test",
        summary="Send a test of a template now",
        description="Renders the template for `customer` (external id) and sends it at once through the "
        "channel's backend to that customer's address, or to `to` (an email address or phone number) when "
        "given. The message is recorded with `is_test: true`, is never retried and never counts as a launch "
        "or in statistics. Answers 201 with the message's status (`sent` or `failed`) and reason.",
        request=inline_serializer(
            "TemplateSendTestInput",
            {"customer": serializers.CharField(), "to": serializers.CharField(required=False)},
        ),
        responses={
            201: inline_serializer(
                "TemplateSendTestResult",
                {
                    "id": serializers.IntegerField(),
                    "status": serializers.CharField(),
                    "reason": serializers.CharField(),
                    "to": serializers.JSONField(),
                },
            ),
            404: {"$ref": "#/components/schemas/Errors"},
        },
        examples=SEND_TEST_EXAMPLES,
        tags=["templates"],
    )
    def post(self, request, slug: str):
        template = self._template(slug)
        body = require_object(request.data)
        problems = [error("unknown field", field=str(key)) for key in body if key not in ("customer", "to")]
        external_id = body.get("customer")
        if not isinstance(external_id, str) or not external_id:
            problems.append(error("must be a customer's external id", field="customer"))
        if "to" in body and not isinstance(body["to"], str):
            problems.append(error("must be a string", field="to"))
        if problems:
            raise ApiError(problems)
        customer = get_or_404(Customer.objects, "customer", external_id=external_id)
        try:
            message = send_test(template=template, customer=customer, to=body.get("to"))
        except SendTestError as exc:
            raise ApiError([error(str(exc), field="to")]) from None
        return Response(
            {
                "id": message.pk,
                "status": message.status,
                "reason": message.reason,
                "to": (message.rendered or {}).get("to"),
            },
            status=status.HTTP_201_CREATED,
        )

    def _template(self, slug: str) -> Template:
        return get_or_404(Template.objects, "template", slug=slug)
