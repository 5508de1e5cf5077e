"""The OpenAPI schema's parts that belong to customers: the Rule component
(its operators are the rule language's own, customers.rules.OPS; the real
validator is customers.rules.validate_rule) and the examples of the
customer, segment and promo pool bodies. A drf-spectacular postprocessing
hook, listed in settings.SPECTACULAR_SETTINGS."""

from __future__ import annotations

from customers.rules import EVENT_OPS, OPS
from maestra.api.schema import add_component, apply_examples

_RULE = {
    "description": "A rule of the rule language (SPEC §5, docs/rules.md): {all: [...]}, {any: [...]}, "
    "{not: RULE}, a leaf {field, op, value}, or an event-history leaf {event, where, within, op, value} "
    "counting the customer's events of one type (op count_gte|count_lte|count_eq|exists|not_exists; "
    "within an ISO 8601 duration back from the evaluation time, at most 100 years, or null for all; "
    "where a rule on the counted event's payload, event.<key> paths only, or null; value a whole "
    "number 0..2147483647 for the count ops).",
    "type": "object",
    "example": {"field": "subscription.email", "op": "eq", "value": "requires_confirmation"},
    "additionalProperties": True,
    "properties": {
        "all": {"type": "array", "items": {"type": "object"}},
        "any": {"type": "array", "items": {"type": "object"}},
        "not": {"type": "object"},
        "field": {"type": "string", "example": "customer.fields.tier"},
        "op": {
            "type": "string",
            "enum": list(dict.fromkeys([*OPS, *EVENT_OPS])),
        },
        "value": {},
        "event": {"type": "string", "maxLength": 100, "example": "order_created"},
        "where": {"type": "object", "nullable": True},
        "within": {"type": "string", "nullable": True, "example": "P30D"},
    },
}

_AT = "2025-06-10T10:00:00Z"
_CUSTOMER = {
    "external_id": "c-42",
    "email": "ada@example.com",
    "email_valid": True,
    "phone": "",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "timezone": "Europe/Berlin",
    "locale": "de",
    "fields": {"tier": "gold"},
    "subscriptions": {"email": "subscribed"},
    "points": 150,
    "segments": ["gold", "newsletter"],
    "created_at": _AT,
    "updated_at": _AT,
}
_SEGMENT = {
    "slug": "gold",
    "name": "Gold customers",
    "kind": "rule",
    "rule": {"field": "customer.fields.tier", "op": "eq", "value": "gold"},
}
_POOL = {"slug": "welcome", "name": "Welcome -10%", "alert_below": 100}

EXAMPLES = {
    "CustomerOutput": _CUSTOMER,
    "CustomerInputRequest": {
        "email": "ada@example.com",
        "first_name": "Ada",
        "fields": {"tier": "gold"},
        "subscriptions": {"email": "requires_confirmation"},
    },
    "SegmentOutput": {**_SEGMENT, "members": 1200, "created_at": _AT},
    "SegmentInputRequest": _SEGMENT,
    # PUT: the path names the object, so the body may leave the slug out.
    "SegmentReplaceRequest": {key: value for key, value in _SEGMENT.items() if key != "slug"},
    "PatchedSegmentInputRequest": {"name": "Gold members"},
    "SegmentMembersResult": {"added": 2, "already_members": 1},
    "PromoPoolOutput": {**_POOL, "available": 950, "issued": 50, "created_at": _AT},
    "PromoPoolInputRequest": _POOL,
    "PromoPoolReplaceRequest": {key: value for key, value in _POOL.items() if key != "slug"},
    "PatchedPromoPoolInputRequest": {"alert_below": 50},
    "PromoCodesResult": {"added": 3, "duplicates": 0},
}


def add_schema(result, generator, request, public):
    add_component(result, "Rule", _RULE)
    return apply_examples(result, EXAMPLES)
