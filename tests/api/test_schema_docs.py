"""The OpenAPI schema and its docs page, served without any CDN."""

import re

import pytest
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient


@pytest.fixture
def schema(db) -> dict:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_it_documents_every_operation_with_auth_responses_and_errors(schema):
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert len(operations) >= 40
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        **schema["components"]["securitySchemes"]["ApiKey"],
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
    }
    for path, method, operation in operations:
        assert path.startswith("/api/v1/")
        assert {"ApiKey": []} in operation["security"], (path, method)
        assert operation.get("summary"), (path, method)
        codes = set(operation["responses"])
        assert {"400", "401", "403", "404", "429"} <= codes, (path, method)
        assert any(code.startswith("2") for code in codes), (path, method)
        if method in ("post", "put", "patch"):
            assert {"413", "415"} <= codes
    error = schema["components"]["schemas"]["Errors"]
    assert error["properties"]["errors"]["items"]["required"] == ["field", "message"]


def test_it_documents_request_bodies_with_examples(schema):
    events = schema["paths"]["/api/v1/events"]["post"]
    body = events["requestBody"]["content"]["application/json"]
    assert "examples" in body
    create_flow = schema["paths"]["/api/v1/flows"]["post"]["requestBody"]["content"]["application/json"]
    assert create_flow["schema"] == {"$ref": "#/components/schemas/FlowDocument"}
    assert create_flow["examples"]
    assert schema["components"]["schemas"]["FlowDocument"]["example"]["format"] == "maestra.flow/1"
    put_customer = schema["paths"]["/api/v1/customers/{external_id}"]["put"]
    assert put_customer["requestBody"]["content"]["application/json"]["examples"]


@pytest.mark.django_db
def test_the_docs_page_loads_everything_from_local_static_files():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "cdn" not in html.lower()
    for asset in re.findall(r"/static/([^\"']+)", html):
        assert finders.find(asset), asset


@pytest.mark.django_db
def test_staff_manage_api_keys_in_the_admin(admin_client):
    assert admin_client.get("/admin/api/apikey/").status_code == 200
    response = admin_client.post("/admin/api/apikey/add/", {"name": "crm", "scopes": ["events:write"]})
    assert response.status_code == 302
    from maestra.api.models import ApiKey

    assert ApiKey.objects.get().name == "crm"


def _has_example(schema: dict, content: dict) -> bool:
    if "examples" in content or "example" in content:
        return True
    target = content.get("schema", {})
    if "$ref" in target:
        target = schema["components"]["schemas"][target["$ref"].rsplit("/", 1)[-1]]
    return "example" in target


def test_every_body_of_every_operation_has_an_example(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            bodies = (
                [operation["requestBody"]["content"]["application/json"]]
                if "requestBody" in operation
                else []
            )
            bodies += [
                response["content"]["application/json"]
                for code, response in operation["responses"].items()
                if code.startswith("2") and "content" in response
            ]
            assert bodies or method == "delete", (method, path)
            for body in bodies:
                assert _has_example(schema, body), (method, path)
