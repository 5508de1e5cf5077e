"""The OpenAPI schema's parts that belong to flows: the FlowDocument
component (what flows.document.parse_document calls well-formed), the SPEC
§11 example document and the examples of the flow, version, statistics,
audience, event and activity bodies. A drf-spectacular postprocessing hook,
listed in settings.SPECTACULAR_SETTINGS."""

from __future__ import annotations

from flows.document import MAX_KEY_LENGTH, MAX_KIND_LENGTH, MAX_NAME_LENGTH, MAX_PORT_LENGTH, MAX_TITLE_LENGTH
from maestra.api.schema import add_component, apply_examples

DOCUMENT_REF = {"$ref": "#/components/schemas/FlowDocument"}

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

# What a goal and an exit criterion both match: an event type and a rule on its payload.
_EVENT_MATCH = {
    "event_type": {"type": "string", "example": "order_created"},
    "filter": {"type": "object", "nullable": True, "description": "a rule on event.<payload key>"},
}

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
        # Goal and exit criteria (SPEC §13); their meaning is judged by validation.
        "goal": {
            "type": "object",
            "nullable": True,
            "required": ["event_type"],
            "additionalProperties": False,
            "description": "a run converts when its customer has a matching event within `window` after entering",
            "properties": {
                **_EVENT_MATCH,
                "window": {
                    "type": "string",
                    "nullable": True,
                    "example": "P7D",
                    "description": "default P7D",
                },
                "value_field": {"type": "string", "nullable": True, "example": "event.total"},
            },
        },
        "exit": {
            "type": "object",
            "nullable": True,
            "required": ["event_type"],
            "additionalProperties": False,
            "description": "a run in flight stops (exit_criteria) when its customer gets a matching event",
            "properties": {
                **_EVENT_MATCH,
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
                        "description": "event, schedule, condition, steps, splitter, wait, wait_event, ab_test or limitation",
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


# --- Examples ----------------------------------------------------------------------

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

EXAMPLES = {
    "FlowOutput": _FLOW,
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
                "email": None,
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
                "email": {"sent": 180, "opened": 81, "clicked": 27, "open_rate": 45.0, "click_rate": 15.0},
            },
        ],
        "goal": {
            "event_type": "order_created",
            "window": "P7D",
            "value_field": "event.total",
            "entered": 200,
            "converted": 30,
            "rate": 0.15,
            "value": 1520.5,
            "nodes": {
                "ask": {
                    "entered": 190,
                    "converted": 29,
                    "rate": 0.1526,
                    "value": 1490.5,
                    "ports": {"next": {"entered": 185, "converted": 29, "rate": 0.1568, "value": 1490.5}},
                }
            },
        },
    },
    "AudiencePreview": {
        "source": "schedule",
        "version": 2,
        "matching": 5400,
        "blocked_by_launch_limit": 400,
        "would_enter": 5000,
    },
    "PatchedFlowUpdateRequest": {"name": "Double opt-in", "description": "GDPR confirmation"},
}


def add_schema(result, generator, request, public):
    add_component(result, "FlowDocument", _DOCUMENT)
    return apply_examples(result, EXAMPLES)
