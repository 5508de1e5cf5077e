"""Bodies the API cannot take are refused with the JSON error contract, never
a 500 (issue 11, SPEC §12): a body over the limit whatever its declared
length → 413; a lone UTF-16 surrogate in any string → 400 naming the field,
on every endpoint that takes a body (one check, in the parser)."""

import json

import pytest

from channels.models import Template
from customers.models import Customer, Event, PromoCode, PromoPool, Segment, SegmentMembership
from flows.models import Flow
from maestra.api.errors import ApiError
from maestra.api.parsers import parse_json
from tests.helpers import assert_json_errors

SECRET = "inbound-secret-for-tests-0123456789"
OVER_5_MIB = 5 * 1024 * 1024 + 1


@pytest.fixture
def objects(db, settings):
    settings.MAESTRA_INBOUND_SECRET = SECRET
    Customer.objects.create(external_id="c-1")
    Segment.objects.create(slug="news", name="News")
    PromoPool.objects.create(slug="welcome", name="Welcome")


# (method, url, a valid body whose "text" is placed where a surrogate goes, the field named)
def _bodies(text: str) -> list[tuple[str, str, dict, str]]:
    return [
        ("put", "/api/v1/customers/c-2", {"first_name": text}, "first_name"),
        ("put", "/api/v1/customers/c-2", {"fields": {"note": text}}, "fields.note"),
        (
            "post",
            "/api/v1/events",
            {
                "events": [
                    {"id": "e-1", "customer": "c-1", "type": "t", "occurred_at": "2025-01-01T00:00:00Z"},
                    {
                        "id": "e-2",
                        "customer": "c-1",
                        "type": "t",
                        "occurred_at": "2025-01-01T00:00:00Z",
                        "payload": {"note": text},
                    },
                ]
            },
            "events.1.payload.note",
        ),
        ("post", "/api/v1/flows", {"format": "maestra.flow/1", "name": text}, "name"),
        ("post", "/api/v1/segments/news/members", {"customers": ["c-1", text]}, "customers.1"),
        ("post", "/api/v1/promo-pools/welcome/codes", {"codes": [text]}, "codes.0"),
        ("post", "/api/v1/templates", {"slug": "t", "name": "T", "channel": "sms", "text": text}, "text"),
        (
            "post",
            "/api/v1/inbound/provider-events",
            {"events": [{"type": "complaint", "email": text}]},
            "events.0.email",
        ),
    ]


CASES = _bodies("SURROGATE")


def _raw(body: dict, text: str) -> bytes:
    # json.dumps escapes a lone surrogate as \ud800, exactly what a client sends.
    return json.dumps(body).replace("SURROGATE", text).encode("ascii")


def _send(api, method: str, url: str, raw: bytes, **extra):
    return api.generic(
        method.upper(),
        url,
        data=raw,
        content_type="application/json",
        HTTP_X_MAESTRA_INBOUND_SECRET=SECRET,
        **extra,
    )


def _nothing_stored() -> None:
    assert not Event.objects.exists()
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["c-1"]
    assert not Flow.objects.exists()
    assert not SegmentMembership.objects.exists()
    assert not PromoCode.objects.exists()
    assert not Template.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url", "body", "field"), CASES, ids=[f"{c[1]}:{c[3]}" for c in CASES])
def test_it_refuses_a_lone_surrogate_with_400_naming_the_field(api, objects, method, url, body, field):
    errors = assert_json_errors(_send(api, method, url, _raw(body, "a\\ud800b")), 400)

    assert [(item["field"], "surrogate" in item["message"]) for item in errors] == [(field, True)]
    _nothing_stored()


@pytest.mark.django_db
def test_it_refuses_a_lone_surrogate_in_a_key_without_echoing_it(api, objects):
    raw = b'{"events": [{"id": "e", "customer": "c-1", "type": "t", "payload": {"\\udfff": 1}}]}'

    errors = assert_json_errors(_send(api, "post", "/api/v1/events", raw), 400)

    assert errors == [{"field": "events.0.payload", "message": errors[0]["message"]}]
    assert errors[0]["message"].startswith("a key contains a lone UTF-16 surrogate")


@pytest.mark.django_db
def test_it_accepts_a_surrogate_pair_which_is_one_real_character(api, objects):
    raw = _raw({"first_name": "SURROGATE"}, "\\ud83d\\ude00")

    response = _send(api, "put", "/api/v1/customers/c-2", raw)

    assert response.status_code == 201
    assert Customer.objects.get(external_id="c-2").first_name == "\U0001f600"


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url", "body", "field"), CASES, ids=[f"{c[1]}:{c[3]}" for c in CASES])
def test_it_refuses_a_body_over_5_mib_with_a_json_413(api, objects, method, url, body, field):
    raw = _raw(body, "x" * OVER_5_MIB)

    errors = assert_json_errors(_send(api, method, url, raw), 413)

    assert "larger than the limit of 5242880 bytes" in errors[0]["message"]
    _nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url", "body", "field"), CASES, ids=[f"{c[1]}:{c[3]}" for c in CASES])
def test_it_refuses_a_body_that_claims_to_be_huge_with_a_json_413(api, objects, method, url, body, field):
    raw = _raw(body, "x")

    response = _send(api, method, url, raw, CONTENT_LENGTH="10000000000")

    assert_json_errors(response, 413)
    _nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/segments/a%0Ab",
        "/api/v1/segments/news%0A",
        "/api/v1/segments/news%0A/members",
        "/api/v1/templates/a%0Ab",
        "/api/v1/promo-pools/a%0Ab/codes",
        "/api/v1/flows/1%0A",
        "/api/v1/customers/c-1%0A/activity",
        "/api/v1/%0A",
    ],
)
def test_it_answers_a_newline_in_a_path_with_a_json_404(api, objects, url):
    # "." in the catch-all's regex did not match a newline: Django's HTML 404.
    assert_json_errors(api.get(url, HTTP_ACCEPT="text/html"), 404)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "words"),
    [("a\\ud800", "surrogate"), ("a\\u0000", "NUL")],
)
def test_it_refuses_a_rule_parameter_holding_text_no_database_can_store(api, flow_in, value, words):
    # Was a 500 (UnicodeEncodeError / DataError) from the count query.
    flow = flow_in("draft")
    rule = '{"field": "customer.email", "op": "eq", "value": "VALUE"}'.replace("VALUE", value)

    response = api.get(f"/api/v1/flows/{flow.pk}/audience-preview", {"rule": rule})

    errors = assert_json_errors(response, 400)
    assert errors[0]["field"] == "rule.value" and words in errors[0]["message"]


@pytest.mark.django_db
def test_it_refuses_nan_in_a_rule_parameter(api, flow_in):
    flow = flow_in("draft")
    rule = '{"field": "customer.fields.n", "op": "gt", "value": NaN}'

    errors = assert_json_errors(api.get(f"/api/v1/flows/{flow.pk}/audience-preview", {"rule": rule}), 400)

    assert errors[0]["field"] == "rule" and "not valid JSON" in errors[0]["message"]


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        # Escapes in any letter case (the fast path's pattern must not miss one).
        (b'{"note": "a\\uD800"}', "note", "surrogate"),
        (b'{"note": "a\\uDfFf"}', "note", "surrogate"),
        (b'{"note": "a\\U0000"}', None, "not valid JSON"),  # \U is no JSON escape
        (b'{"a": {"b": ["x", "\\u0000"]}}', "a.b.1", "NUL"),
        # The character itself in text handed over as str.
        ('{"note": "a\ud800"}', "note", "surrogate"),
        ('{"note": "a\x00"}', None, "not valid JSON"),  # a raw control character
    ],
)
def test_parse_json_finds_every_character_text_cannot_hold(raw, field, words):
    with pytest.raises(ApiError) as refused:
        parse_json(raw)
    problems = refused.value.errors
    assert any(words in problem["message"] for problem in problems), problems
    if field:
        assert problems[0]["field"] == field


def test_parse_json_keeps_text_that_only_looks_like_a_bad_escape():
    # An escaped backslash followed by "u0000": six plain characters.
    assert parse_json(b'{"note": "C:\\\\u0000 and \\ud83d\\ude00"}') == {"note": "C:\\u0000 and \U0001f600"}
