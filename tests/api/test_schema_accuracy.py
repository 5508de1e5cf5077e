"""What schemathesis found (issue 11) where the OpenAPI schema and the API
disagreed, each pinned by a plain test: the API refuses what the schema calls
invalid, and the schema does not call invalid what the API accepts."""

import copy

import jsonschema
import pytest

from customers.models import Channel, PromoPool, Segment, Subscription
from flows.api.schema import _DOCUMENT
from flows.document import DocumentError, parse_document


def _json_schema(node):
    """OpenAPI 3.0's `nullable` as JSON Schema's type list."""
    if isinstance(node, dict):
        converted = {
            key: _json_schema(value) for key, value in node.items() if key not in ("nullable", "example")
        }
        if node.get("nullable"):
            converted["type"] = [node["type"], "null"]
        return converted
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    return node


DOCUMENT_SCHEMA = jsonschema.Draft7Validator(_json_schema(_DOCUMENT))
BASE = {"format": "maestra.flow/1", "name": "x"}


def _with(path: str, value):
    document = copy.deepcopy(
        {
            **BASE,
            "launch_limit": {"mode": "once"},
            "schedule": {"start_at": None},
            "nodes": [{"key": "a", "kind": "event"}],
            "edges": [{"from": "a", "to": "b"}],
        }
    )
    *parents, last = path.split(".")
    target = document
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return document


def _parser_accepts(document) -> bool:
    try:
        parse_document(document)
    except DocumentError:
        return False
    return True


# Well-formed for the parser (semantic errors at most: stored as an invalid draft).
WELL_FORMED = [
    _with("edges.0.port", ""),  # schemathesis: refused by the old schema's minLength
    _with("edges.0.from", "not a key!"),
    _with("nodes.0.kind", "teleport"),
    _with("launch_limit.mode", "sometimes"),
    _with("launch_limit.max_total", 0),
    _with("launch_limit", None),
    _with("schedule.start_at", "tomorrow"),
    _with("nodes.0.position", None),
    _with("nodes.0.position", {"x": 1.5, "y": -2}),
    _with("nodes", [{"key": f"n{i}", "kind": "wait"} for i in range(151)]),
]
MALFORMED = [
    _with("name", "   "),
    _with("name", "x" * 201),
    _with("format", "maestra.flow/2"),
    _with("nodes.0.key", "a b"),
    _with("nodes.0.kind", "k" * 21),
    _with("nodes.0.config", None),
    _with("nodes.0.position", {"x": 1}),
    _with("edges.0.port", "p" * 101),
    _with("edges.0.to", 5),
    _with("launch_limit.max_total", "3"),
    _with("launch_limit.extra", 1),
    {**BASE, "unknown": 1},
]


@pytest.mark.parametrize("document", WELL_FORMED)
def test_the_document_schema_accepts_what_the_parser_calls_well_formed(document):
    assert _parser_accepts(document)
    assert DOCUMENT_SCHEMA.is_valid(document), list(DOCUMENT_SCHEMA.iter_errors(document))


@pytest.mark.parametrize("document", MALFORMED)
def test_the_document_schema_refuses_what_the_parser_refuses(document):
    assert not _parser_accepts(document)
    assert not DOCUMENT_SCHEMA.is_valid(document)


@pytest.mark.django_db
def test_the_schema_lists_the_subscription_channels_and_statuses(client):
    schema = client.get("/api/schema/?format=json").json()
    subscriptions = schema["components"]["schemas"]["CustomerSubscriptionsInputRequest"]["properties"]
    assert set(subscriptions) == set(Channel.values)
    status = schema["components"]["schemas"][subscriptions["email"]["$ref"].rsplit("/", 1)[1]]
    assert set(status["enum"]) == set(Subscription.Status.values)


@pytest.mark.django_db
def test_an_event_payload_may_be_null_as_the_schema_says(api, client):
    schema = client.get("/api/schema/?format=json").json()
    assert schema["components"]["schemas"]["EventItemRequest"]["properties"]["payload"]["nullable"] is True
    event = {"id": "e", "customer": "c", "type": "t", "occurred_at": "2025-01-01T00:00:00Z", "payload": None}
    assert api.post("/api/v1/events", {"events": [event]}, format="json").status_code == 202


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", ["page_size=null", "page_size=0", "page_size=-1", "page_size=1.5", "page=0", "page=abc"]
)
def test_a_page_or_page_size_that_is_not_a_positive_integer_is_a_400(api, query):
    # The old pagination fell back to the default page size (the schema says integer).
    response = api.get(f"/api/v1/segments?{query}")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == query.split("=")[0]


@pytest.mark.django_db
def test_a_page_size_over_the_maximum_is_cut_to_it(api):
    for index in range(3):
        Segment.objects.create(slug=f"s{index}", name="S")
    assert len(api.get("/api/v1/segments?page_size=100000").json()["results"]) == 3
    assert api.get("/api/v1/segments?page_size=2&page=2").json()["results"][0]["slug"] == "s2"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "method", "body", "field", "expected"),
    [
        ("/api/v1/segments", "post", {"slug": 0, "name": "S"}, "slug", "a string"),
        ("/api/v1/segments", "post", {"slug": "s", "name": 0}, "name", "a string"),
        (
            "/api/v1/promo-pools",
            "post",
            {"slug": "p", "name": "P", "alert_below": "5"},
            "alert_below",
            "an integer",
        ),
        (
            "/api/v1/promo-pools",
            "post",
            {"slug": "p", "name": "P", "alert_below": True},
            "alert_below",
            "an integer",
        ),
        (
            "/api/v1/templates",
            "post",
            {"slug": "t", "name": "T", "channel": "sms", "text": 5},
            "text",
            "a string",
        ),
        (
            "/api/v1/templates",
            "post",
            {"slug": "t", "name": "T", "channel": "sms", "text": "x", "headers": []},
            "headers",
            "an object",
        ),
        ("/api/v1/flows/{flow}", "patch", {"name": 7}, "name", "a string"),
    ],
)
def test_a_body_value_of_the_wrong_json_type_is_refused_not_converted(
    api, flow_in, url, method, body, field, expected
):
    # DRF turned 0 into "0" and "5" into 5: the schema promises the JSON type.
    flow = flow_in("draft")
    response = getattr(api, method)(url.format(flow=flow.pk), body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [{"field": field, "message": f"must be {expected}"}]
    assert not Segment.objects.exists() and not PromoPool.objects.exists()


@pytest.mark.django_db
def test_query_parameters_keep_their_text_conversions(api, flow_in):
    flow = flow_in("draft")
    assert api.get(f"/api/v1/flows/{flow.pk}/stats?test=true").status_code == 200
    assert api.get(f"/api/v1/flows/{flow.pk}/audience-preview?sample=false").status_code in (200, 409)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "slug"),
    [
        ("/api/v1/templates/{slug}", "confirm"),
        ("/api/v1/segments/{slug}", "gold"),
        ("/api/v1/promo-pools/{slug}", "welcome"),
    ],
)
def test_a_put_body_may_leave_the_slug_out_as_the_schema_says(api, client, templates, path, slug):
    # The schema required it (the create body's component) while the API takes
    # it from the path: schemathesis's state machine sent {"name": ...} alone.
    Segment.objects.create(slug="gold", name="Gold")
    PromoPool.objects.create(slug="welcome", name="Welcome")
    schema = client.get("/api/schema/?format=json").json()
    reference = schema["paths"][path]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]

    assert "slug" not in body["required"] and "slug" not in body["example"]
    response = api.put(path.format(slug=slug), body["example"], format="json")
    assert response.status_code == 200, response.content
    assert response.json()["slug"] == slug
    moved = api.put(path.format(slug=slug), {**body["example"], "slug": "other"}, format="json")
    assert moved.status_code == 400 and moved.json()["errors"][0]["field"] == "slug"
