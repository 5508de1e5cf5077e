"""The OpenAPI schema's parts that belong to channels: the examples of the
template bodies. A drf-spectacular postprocessing hook, listed in
settings.SPECTACULAR_SETTINGS."""

from __future__ import annotations

from maestra.api.schema import apply_examples

_AT = "2025-06-10T10:00:00Z"
_TEMPLATE = {
    "slug": "confirm",
    "name": "Confirm your subscription",
    "channel": "email",
    "purpose": "service",
    "subject": "Please confirm, {{ customer.first_name }}",
    "text": "Click to confirm.",
    "html": "<p>Click to confirm.</p>",
    "method": "POST",
    "url": "",
    "headers": {},
}

EXAMPLES = {
    "TemplateOutput": {**_TEMPLATE, "created_at": _AT, "updated_at": _AT},
    "TemplateInputRequest": _TEMPLATE,
    "PatchedTemplateInputRequest": {"subject": "Confirm now, {{ customer.first_name }}"},
}


def add_schema(result, generator, request, public):
    return apply_examples(result, EXAMPLES)
