"""OpenAPI details drf-spectacular cannot infer: the API key security scheme,
the error responses every operation can give, and the hand-written schemas
of the flow document and the rule language (their real validators are
flows.document.parse_document and customers.rules.validate_rule)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from flows.document import MAX_KEY_LENGTH, MAX_KIND_LENGTH, MAX_NAME_LENGTH, MAX_PORT_LENGTH, MAX_TITLE_LENGTH
from maestra.api.access import access_for, endpoint_name

ERRORS_REF = {"$ref": "#/components/schemas/Errors"}
DOCUMENT_REF = {"$ref": "#/components/schemas/FlowDocument"}

_ERROR_DESCRIPTIONS = {
    "400": "Bad input: every problem is listed.",
    "401": "No API key, or an invalid, revoked or expired one.",
    "403": "The API key lacks the scope this operation needs, or the admin user lacks its permissions "
    "(see x-scopes and x-permissions).",
    "404": "No such object (or no such page of a list).",
    "405": "Method not allowed on this URL.",
    "406": "The Accept header asks for a format the API does not produce.",
    "413": "The body is larger than the limit (API_MAX_BODY_BYTES).",
    "415": "The body is not application/json.",
    "429": "Too many requests for this key; see Retry-After.",
}
_BODY_METHODS = ("POST", "PUT", "PATCH")


def _errors_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERRORS_REF}}}


class MaestraAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        rule = access_for(endpoint_name(self.view), method)
        if operation is not None and rule is not None:
            # Each operation says what it needs (maestra/api/access.py): the
            # scopes as an extension, since OpenAPI 3.0 allows scopes in a
            # security requirement only for OAuth2.
            operation["x-scopes"] = list(rule.scopes)
            operation["x-permissions"] = list(rule.perms)
            access = (
                f"**Access:** an API key with the scope {' or '.join(f'`{s}`' for s in rule.scopes)}; "
                f"an admin session with the permission{'s' if len(rule.perms) > 1 else ''} "
                f"{', '.join(f'`{p}`' for p in rule.perms)}."
            )
            operation["description"] = f"{operation.get('description', '')}\n\n{access}".strip()
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["400", "401", "403", "404", "405", "406", "429"]
        if self.method in _BODY_METHODS:
            codes += ["413", "415"]
        for code in codes:
            responses.setdefault(code, _errors_response(_ERROR_DESCRIPTIONS[code]))
        return responses


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "maestra.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'The header value is "Api-Key <key>" (create a key with `manage.py create_api_key NAME` '
            "or in the admin).",
        }


_RULE = {
    "description": "A rule of the rule language (SPEC §5): {all: [...]}, {any: [...]}, {not: RULE} or a "
    "leaf {field, op, value}.",
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
            "enum": [
                "eq",
                "ne",
                "gt",
                "gte",
                "lt",
                "lte",
                "in",
                "not_in",
                "contains",
                "exists",
                "not_exists",
                "before",
                "after",
                "within_last",
            ],
        },
        "value": {},
    },
}

SPEC_EXAMPLE = {
    "format": "maestra.flow/1",
    "name": "Subscription confirmation",
    "timezone": "Europe/Berlin",
    "launch_limit": {"mode": "periodic", "period": "P7D", "max_total": None},
    "schedule": {"start_at": None, "end_at": None},
    "nodes": [
        {
            "key": "start",
            "kind": "event",
            "title": "Subscription changed",
            "config": {
                "event_type": "subscription_changed",
                "filter": {"field": "subscription.email", "op": "eq", "value": "requires_confirmation"},
            },
        },
        {
            "key": "ask",
            "kind": "steps",
            "title": "Ask to confirm",
            "config": {
                "relevance": "P1D",
                "steps": [{"action": "send", "channel": "email", "template": "confirm"}],
            },
        },
        {"key": "day", "kind": "wait", "config": {"mode": "fixed", "duration": "P1D"}},
        {
            "key": "still",
            "kind": "condition",
            "config": {"rule": {"field": "subscription.email", "op": "eq", "value": "requires_confirmation"}},
        },
        {
            "key": "remind",
            "kind": "steps",
            "config": {
                "relevance": "P1D",
                "steps": [{"action": "send", "channel": "email", "template": "reminder"}],
            },
        },
    ],
    "edges": [
        {"from": "start", "to": "ask"},
        {"from": "ask", "to": "day"},
        {"from": "day", "to": "still"},
        {"from": "still", "port": "yes", "to": "remind"},
    ],
}

# The schema of a document says what parse_document (flows/document.py)
# calls well-formed: what it refuses with 400. What only validation judges —
# known kinds, templates and ports, launch limit modes, dates, the node count
# — is a semantic error stored with the draft (201), so it is described in
# words here, not as a constraint a client would expect a 400 for.
_KEY = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]+$",
    "minLength": 1,
    "maxLength": MAX_KEY_LENGTH,
    "description": "letters, digits, '_' and '-'",
}
_KEY_REFERENCE = {"type": "string", "maxLength": MAX_KEY_LENGTH, "description": "the key of a node"}

_DOCUMENT = {
    "description": "A flow document maestra.flow/1 (SPEC §11). Export returns exactly what was imported "
    "or saved. A malformed document is refused (400); a well-formed one with semantic errors (unknown "
    "template, unreachable node, unknown kind or port, more than 150 nodes, ...) is stored as an invalid "
    "draft with its errors.",
    "type": "object",
    "required": ["format", "name"],
    "additionalProperties": False,
    "example": SPEC_EXAMPLE,
    "properties": {
        "format": {"type": "string", "enum": ["maestra.flow/1"]},
        "name": {"type": "string", "pattern": "\\S", "maxLength": MAX_NAME_LENGTH},
        "description": {"type": "string"},
        "timezone": {"type": "string", "example": "Europe/Berlin", "description": "an IANA time zone"},
        "launch_limit": {
            "type": "object",
            "nullable": True,
            "additionalProperties": False,
            "properties": {
                "mode": {
                    "type": "string",
                    "example": "periodic",
                    "description": "once, every_time or periodic",
                },
                "period": {"type": "string", "nullable": True, "example": "P7D"},
                "max_total": {"type": "integer", "nullable": True, "description": "at least 1"},
            },
        },
        "schedule": {
            "type": "object",
            "nullable": True,
            "additionalProperties": False,
            "properties": {
                "start_at": {"type": "string", "nullable": True, "description": "ISO 8601 with a UTC offset"},
                "end_at": {"type": "string", "nullable": True, "description": "ISO 8601 with a UTC offset"},
            },
        },
        "nodes": {
            "type": "array",
            "description": "at most 150",
            "items": {
                "type": "object",
                "required": ["key", "kind"],
                "additionalProperties": False,
                "properties": {
                    "key": _KEY,
                    "kind": {
                        "type": "string",
                        "maxLength": MAX_KIND_LENGTH,
                        "description": "event, schedule, condition, steps, splitter, wait, ab_test or limitation",
                    },
                    "title": {"type": "string", "maxLength": MAX_TITLE_LENGTH},
                    "config": {"type": "object", "description": "the kind's settings (SPEC §5)"},
                    "position": {
                        "type": "object",
                        "nullable": True,
                        "required": ["x", "y"],
                        "additionalProperties": False,
                        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                    },
                },
            },
        },
        "edges": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["from", "to"],
                "additionalProperties": False,
                "properties": {
                    "from": _KEY_REFERENCE,
                    "to": _KEY_REFERENCE,
                    "port": {"type": "string", "maxLength": MAX_PORT_LENGTH, "default": "next"},
                },
            },
        },
    },
}

_ERRORS = {
    "type": "object",
    "required": ["errors"],
    "example": {
        "errors": [
            {"index": 3, "field": "occurred_at", "message": "has no UTC offset"},
        ]
    },
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "index": {"type": "integer", "description": "the item of a batch"},
                    "node": {"type": "string", "nullable": True, "description": "the flow node's key"},
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        }
    },
}


def add_components(result, generator, request, public):
    """drf-spectacular postprocessing hook: the hand-written components."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Errors", _ERRORS)
    schemas.setdefault("FlowDocument", _DOCUMENT)
    schemas.setdefault("Rule", _RULE)
    return result


# --- Examples ----------------------------------------------------------------------
# One example per schema component, so every operation (request and response)
# shows a realistic body in the docs; lists are built from their items.

_AT = "2025-06-10T10:00:00Z"
_FLOW = {
    "id": 7,
    "name": "Subscription confirmation",
    "description": "",
    "status": "active",
    "live_version": 1,
    "draft": {
        "version": 2,
        "valid": False,
        "errors": [
            {"node": "ask", "field": "config.steps.0.template", "message": "unknown template 'confirm2'"}
        ],
        "updated_at": _AT,
    },
    "errors": [{"node": "ask", "field": "config.steps.0.template", "message": "unknown template 'confirm2'"}],
    "created_at": _AT,
    "updated_at": _AT,
}
_CUSTOMER = {
    "external_id": "c-42",
    "email": "ada@example.com",
    "email_valid": True,
    "phone": "",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "timezone": "Europe/Berlin",
    "fields": {"tier": "gold"},
    "subscriptions": {"email": "subscribed"},
    "points": 150,
    "segments": ["gold", "newsletter"],
    "created_at": _AT,
    "updated_at": _AT,
}
_RUN = {
    "id": 1001,
    "flow": 7,
    "flow_name": "Subscription confirmation",
    "version": 1,
    "is_test": False,
    "status": "waiting",
    "current_node": "day",
    "entered_at": _AT,
    "ended_at": None,
    "stop_reason": None,
    "error": None,
    "nodes": [
        {
            "key": "start",
            "kind": "event",
            "at": _AT,
            "exited_at": _AT,
            "port": "next",
            "stop_reason": None,
            "settings": {"event_type": "subscription_changed"},
        },
        {
            "key": "ask",
            "kind": "steps",
            "at": _AT,
            "exited_at": _AT,
            "port": "next",
            "stop_reason": None,
            "settings": {
                "relevance": "P1D",
                "steps": [{"action": "send", "channel": "email", "template": "confirm"}],
            },
        },
    ],
    "messages": [
        {
            "id": 5001,
            "node": "ask",
            "channel": "email",
            "template": "confirm",
            "status": "sent",
            "reason": "",
            "created_at": _AT,
            "sent_at": _AT,
        }
    ],
}
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
_SEGMENT = {
    "slug": "gold",
    "name": "Gold customers",
    "kind": "rule",
    "rule": {"field": "customer.fields.tier", "op": "eq", "value": "gold"},
}
_POOL = {"slug": "welcome", "name": "Welcome -10%", "alert_below": 100}

EXAMPLES = {
    "FlowOutput": _FLOW,
    "CustomerOutput": _CUSTOMER,
    "CustomerInputRequest": {
        "email": "ada@example.com",
        "first_name": "Ada",
        "fields": {"tier": "gold"},
        "subscriptions": {"email": "requires_confirmation"},
    },
    "Activity": {"count": 1, "next": None, "previous": None, "runs": [_RUN]},
    "EventsResult": {"accepted": 1, "duplicates": 0},
    "Version": {
        "id": 12,
        "number": 1,
        "state": "launched",
        "is_test": False,
        "is_live": True,
        "created_at": _AT,
        "launched_at": _AT,
        "stopped_at": None,
        "launched_by": "marketer",
        "errors": 0,
    },
    "Stats": {
        "flow": 7,
        "start": "2025-06-03T10:00:00Z",
        "end": _AT,
        "test": False,
        "start_node": "start",
        "start_entered": 200,
        "nodes": [
            {
                "key": "start",
                "kind": "event",
                "title": "Subscription changed",
                "entered": 200,
                "entered_percent": 100.0,
                "exits": [{"port": "next", "count": 190, "percent": 95.0}],
                "stops": [{"reason": "launch_limit", "count": 10, "percent": 5.0}],
                "waiting_now": 0,
                "messages": {},
            },
            {
                "key": "ask",
                "kind": "steps",
                "title": "Ask to confirm",
                "entered": 190,
                "entered_percent": 95.0,
                "exits": [{"port": "next", "count": 185, "percent": 92.5}],
                "stops": [{"reason": "relevance_expired", "count": 5, "percent": 2.5}],
                "waiting_now": 0,
                "messages": {"sent": 180, "failed": 5},
            },
        ],
    },
    "AudiencePreview": {
        "source": "schedule",
        "version": 2,
        "matching": 5400,
        "blocked_by_launch_limit": 400,
        "would_enter": 5000,
    },
    "TemplateOutput": {**_TEMPLATE, "created_at": _AT, "updated_at": _AT},
    "TemplateInputRequest": _TEMPLATE,
    "PatchedTemplateInputRequest": {"subject": "Confirm now, {{ customer.first_name }}"},
    "SegmentOutput": {**_SEGMENT, "members": 1200, "created_at": _AT},
    "SegmentInputRequest": _SEGMENT,
    "PatchedSegmentInputRequest": {"name": "Gold members"},
    "SegmentMembersResult": {"added": 2, "already_members": 1},
    "PromoPoolOutput": {**_POOL, "available": 950, "issued": 50, "created_at": _AT},
    "PromoPoolInputRequest": _POOL,
    "PatchedPromoPoolInputRequest": {"alert_below": 50},
    "PromoCodesResult": {"added": 3, "duplicates": 0},
    "PatchedFlowUpdateRequest": {"name": "Double opt-in", "description": "GDPR confirmation"},
}


def add_examples(result, generator, request, public):
    """drf-spectacular postprocessing hook: EXAMPLES onto their components,
    and paginated lists built from their items' examples."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, example in EXAMPLES.items():
        if name in schemas:
            schemas[name]["example"] = example
    for name, schema in schemas.items():
        item = name.removeprefix("Paginated").removesuffix("List")
        if name.startswith("Paginated") and item in EXAMPLES:
            schema["example"] = {"count": 1, "next": None, "previous": None, "results": [EXAMPLES[item]]}
    return result
