"""The OpenAPI schema's parts that belong to channels: the examples of the
template bodies (on their components, through the drf-spectacular
postprocessing hook listed in settings.SPECTACULAR_SETTINGS) and the
examples the template, send-test and provider-events operations show."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample

from maestra.api.schema import apply_examples

_AT = "2025-06-10T10:00:00Z"
_EMAIL = {
    "slug": "confirm",
    "name": "Confirm your subscription",
    "channel": "email",
    "purpose": "service",
    "subject": "Please confirm, {{ customer.first_name }}",
    "text": "Click to confirm.",
    "html": "<p>Click to confirm.</p>",
    "track": {"opens": False, "clicks": False},
    "translations": {
        "de": {
            "subject": "Bitte bestätigen, {{ customer.first_name }}",
            "text": "Zum Bestätigen klicken.",
            "html": "<p>Zum Bestätigen klicken.</p>",
        }
    },
}
_TEMPLATE = {**_EMAIL, "method": "POST", "url": "", "headers": {}}

EXAMPLES = {
    "TemplateOutput": {**_TEMPLATE, "created_at": _AT, "updated_at": _AT},
    "TemplateInputRequest": _TEMPLATE,
    # PUT: the path names the template, so the body may leave the slug out.
    "TemplateReplaceRequest": {key: value for key, value in _TEMPLATE.items() if key != "slug"},
    "PatchedTemplateInputRequest": {"subject": "Confirm now, {{ customer.first_name }}"},
}

TEMPLATE_EXAMPLES = [
    OpenApiExample("Email", value=_EMAIL, request_only=True),
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

SEND_TEST_EXAMPLES = [
    OpenApiExample("To the customer", value={"customer": "c-1"}, request_only=True),
    OpenApiExample(
        "To another address", value={"customer": "c-1", "to": "me@shop.example"}, request_only=True
    ),
    OpenApiExample(
        "Sent",
        value={"id": 812, "status": "sent", "reason": "", "to": "me@shop.example"},
        response_only=True,
        status_codes=["201"],
    ),
]

# The provider-events operation is left out of the schema (it is not
# authenticated by an API key); its examples document the view all the same.
PROVIDER_EVENTS_EXAMPLES = [
    OpenApiExample(
        "Bounce, complaint, STOP",
        value={
            "events": [
                {"type": "bounce", "message_id": "<maestra-812@shop.example>", "bounce_type": "hard"},
                {"type": "complaint", "email": "ann@example.com"},
                {"type": "sms_reply", "phone": "+4915112345678", "text": "STOP"},
            ]
        },
        request_only=True,
    ),
    OpenApiExample(
        "Counts",
        value={"bounced_hard": 1, "bounced_soft": 0, "complaints": 1, "sms_stops": 1, "ignored": 0},
        response_only=True,
        status_codes=["200"],
    ),
]


def add_schema(result, generator, request, public):
    return apply_examples(result, EXAMPLES)
