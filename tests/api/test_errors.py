"""The error contract: JSON {"errors": [...]} for every bad request, never
HTML and never a 500 — also for unknown URLs, oversized bodies, wrong
content types, broken JSON and unknown methods."""

import pytest
from rest_framework.test import APIClient

from channels.models import Template
from tests.helpers import assert_json_errors


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/api/", "/api/v1/", "/api/v1/nope", "/api/v2/flows", "/api/v1/flows/abc", "/api/v1/flows/1/nope"]
)
def test_it_answers_an_unknown_api_url_with_a_json_404(api, url):
    errors = assert_json_errors(api.get(url, HTTP_ACCEPT="text/html"), 404)
    assert url in errors[0]["message"]


@pytest.mark.django_db
def test_it_answers_an_unknown_api_url_with_json_even_without_a_key():
    assert_json_errors(APIClient().post("/api/v1/nope", data="x", content_type="text/plain"), 404)


@pytest.mark.django_db
def test_it_hints_at_the_trailing_slash(api):
    errors = assert_json_errors(api.get("/api/v1/flows/"), 404)
    assert "without the trailing slash" in errors[0]["message"]


@pytest.mark.django_db
def test_it_answers_an_unknown_object_with_a_json_404(api):
    for url in (
        "/api/v1/flows/999999",
        "/api/v1/customers/nobody",
        "/api/v1/templates/none",
        "/api/v1/flows/9" * 1,
    ):
        assert_json_errors(api.get(url), 404)


@pytest.mark.django_db
def test_it_answers_a_huge_id_with_404_not_a_database_error(api):
    assert_json_errors(api.get("/api/v1/flows/" + "9" * 40), 404)
    assert_json_errors(api.post("/api/v1/flows/" + "9" * 30 + "/launch"), 404)


@pytest.mark.django_db
def test_it_refuses_a_body_over_the_size_limit_with_413(api, settings):
    settings.MAESTRA_API_MAX_BODY_BYTES = 1000
    body = {
        "events": [
            {"id": str(i), "customer": "c", "type": "t", "occurred_at": "2025-01-01T00:00:00Z"}
            for i in range(40)
        ]
    }
    errors = assert_json_errors(api.post("/api/v1/events", body, format="json"), 413)
    assert "1000 bytes" in errors[0]["message"]
    from customers.models import Event

    assert not Event.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_body_that_lies_about_its_length(api, settings):
    settings.MAESTRA_API_MAX_BODY_BYTES = 100
    response = api.generic(
        "POST",
        "/api/v1/events",
        data=b"{" + b" " * 500 + b"}",
        content_type="application/json",
        CONTENT_LENGTH="10",
    )
    # The declared length is what the server reads: the body is cut and so not JSON.
    assert response.status_code in (400, 413)
    assert "errors" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", "hello"),
        ("application/x-www-form-urlencoded", "events=1"),
        ("multipart/form-data; boundary=xx", "--xx--"),
        ("application/xml", "<events/>"),
    ],
)
def test_it_refuses_a_body_that_is_not_json_with_415(api, content_type, data):
    errors = assert_json_errors(api.post("/api/v1/events", data=data, content_type=content_type), 415)
    assert content_type.split(";")[0] in errors[0]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b'{"events": NaN}',
        b'{"events": [Infinity]}',
        b"\xff\xfe garbage",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_it_refuses_malformed_json_with_400(api, raw):
    errors = assert_json_errors(
        api.generic("POST", "/api/v1/events", data=raw, content_type="application/json"), 400
    )
    assert "JSON" in errors[0]["message"] or "UTF-8" in errors[0]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"slug": "t", "name": "T", "channel": "sms", "text": "a\u0000b"},
        {"slug": "t", "name": "T", "channel": "sms", "text": "x", "headers": {"a\u0000": "b"}},
    ],
)
def test_it_refuses_the_nul_character_with_400_not_a_database_error(api, body):
    # PostgreSQL text and jsonb cannot hold U+0000 (schemathesis found the 500).
    errors = assert_json_errors(api.post("/api/v1/templates", body, format="json"), 400)
    assert "NUL" in errors[0]["message"]
    assert not Template.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body", [[], "text", 5])
def test_it_refuses_a_body_that_is_not_an_object(api, body):
    assert_json_errors(api.post("/api/v1/events", body, format="json"), 400)
    assert_json_errors(api.put("/api/v1/customers/c-1", body, format="json"), 400)
    assert_json_errors(api.post("/api/v1/flows", body, format="json"), 400)


@pytest.mark.django_db
def test_it_answers_an_unsupported_method_with_a_json_405(api):
    assert_json_errors(api.delete("/api/v1/events"), 405)
    assert_json_errors(api.post("/api/v1/flows/1/stats"), 405)


@pytest.mark.django_db
def test_it_answers_an_unacceptable_accept_header_with_a_json_406(api):
    response = api.get("/api/v1/flows", HTTP_ACCEPT="application/xml")
    assert_json_errors(response, 406)


@pytest.mark.django_db
def test_it_answers_a_bad_page_with_a_json_404_and_a_bad_filter_with_400(api):
    assert_json_errors(api.get("/api/v1/flows", {"page": 99}), 404)
    errors = assert_json_errors(api.get("/api/v1/flows", {"status": "sleeping"}), 400)
    assert errors[0]["field"] == "status"


@pytest.mark.django_db
def test_it_answers_a_bug_with_a_json_500_not_html(api, monkeypatch):
    from flows.api import views as flows_api

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(flows_api.stats, "flow_stats", broken)
    from flows import lifecycle

    flow = lifecycle.create_flow(document={"format": "maestra.flow/1", "name": "x"})
    errors = assert_json_errors(api.get(f"/api/v1/flows/{flow.pk}/stats"), 500)
    assert "a bug" not in errors[0]["message"]
