"""The canvas's JSON endpoints refuse malformed input with a JSON 4xx — never
Django's HTML pages, never a 500 (issue 11): the same JSON reader as the API."""

import json

import pytest
from django.urls import reverse

from flows.models import Flow, FlowVersion
from tests.helpers import assert_json_errors

S = Flow.Status


def save_url(flow: Flow) -> str:
    return reverse("admin:flows_flow_canvas_save", args=[flow.pk])


def _drafts(flow: Flow) -> dict:
    return dict(FlowVersion.objects.filter(flow=flow).values_list("pk", "document_json"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        # Deeper than the decoder follows: was a RecursionError (HTML 500).
        (b'{"document": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "body", "not valid JSON"),
        # A lone surrogate: was a UnicodeEncodeError at the database (HTML 500).
        (b'{"document": {"format": "maestra.flow/1", "name": "x\\ud800"}}', "document.name", "surrogate"),
        # PostgreSQL cannot store U+0000: was a DataError (HTML 500).
        (b'{"document": {"format": "maestra.flow/1", "name": "x\\u0000"}}', "document.name", "NUL"),
        (b'{"document": {"format": "maestra.flow/1", "name": "x", "nodes": NaN}}', "body", "NaN"),
        (b"\xff\xfe", "body", "UTF-8"),
    ],
)
def test_autosave_refuses_malformed_json_with_a_json_400(admin_client, flow_in, raw, field, words):
    flow = flow_in(S.READY)
    before = _drafts(flow)

    response = admin_client.generic("POST", save_url(flow), data=raw, content_type="application/json")

    errors = assert_json_errors(response, 400)
    assert errors[0]["field"] == field
    assert words in errors[0]["message"]
    assert _drafts(flow) == before


@pytest.mark.django_db
def test_autosave_refuses_a_body_over_the_limit_with_a_json_413(admin_client, flow_in):
    flow = flow_in(S.READY)
    big = json.dumps({"document": {"format": "maestra.flow/1", "name": "x", "description": "a" * 6_000_000}})

    # Over the canvas's 2 MB, under Django's 5 MiB: was a JSON 400; over 5 MiB an HTML 400.
    errors = assert_json_errors(admin_client.post(save_url(flow), big, content_type="application/json"), 413)
    assert "larger than the limit" in errors[0]["message"]


@pytest.mark.django_db
def test_autosave_refuses_a_body_that_claims_to_be_huge_with_a_json_413(admin_client, flow_in):
    flow = flow_in(S.READY)

    response = admin_client.generic(
        "POST", save_url(flow), data=b"{}", content_type="application/json", CONTENT_LENGTH="10000000000"
    )

    assert_json_errors(response, 413)


@pytest.mark.django_db
def test_autosave_refuses_a_content_length_that_is_not_a_number_with_a_json_400(admin_client, flow_in):
    flow = flow_in(S.READY)

    response = admin_client.generic(
        "POST", save_url(flow), data=b"{}", content_type="application/json", CONTENT_LENGTH="lots"
    )

    assert assert_json_errors(response, 400)[0]["field"] == "Content-Length"


@pytest.mark.django_db
def test_autosave_answers_a_wrong_method_with_a_json_405(admin_client, flow_in):
    flow = flow_in(S.READY)

    response = admin_client.get(save_url(flow))

    assert_json_errors(response, 405)
    assert response["Allow"] == "POST"


@pytest.mark.django_db
def test_autosave_answers_a_bug_with_a_json_500_not_html(admin_client, flow_in, spec_document, monkeypatch):
    from flows.admin import canvas

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(canvas, "save_draft", broken)
    flow = flow_in(S.READY)

    response = admin_client.post(
        save_url(flow), json.dumps({"document": spec_document}), content_type="application/json"
    )

    errors = assert_json_errors(response, 500)
    assert "a bug" not in errors[0]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["to=9999-12-31", "to=0001-01-01T00:00", "to=0001-01-03"])
def test_canvas_statistics_refuse_a_period_at_the_end_of_the_calendar_with_a_json_400(
    admin_client, flow_in, query
):
    flow = flow_in(S.READY)

    response = admin_client.get(reverse("admin:flows_flow_canvas_stats", args=[flow.pk]) + "?" + query)

    errors = assert_json_errors(response, 400)
    assert errors[0]["field"] == "period"
