"""Schemathesis over the whole OpenAPI schema, in process (WSGI), with a
valid key: for every operation, data generated from the schema (valid and
invalid, random and with ids of real objects) never gets a 5xx, and every
response conforms to the schema (status code, content type, body, headers)."""

import contextlib
import json

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from channels.models import Template
from customers.models import Customer, PromoPool, Segment
from flows import lifecycle
from tests.flows.conftest import SPEC_EXAMPLE

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Per operation and mode; about 40 operations x 3 runs keeps the whole test
# at a few hundred requests.
EXAMPLES = 4


def _real_objects() -> dict[str, object]:
    for slug in ("confirm", "reminder"):
        Template.objects.create(slug=slug, name=slug, channel="email", purpose="service", text="Hi")
    flow = lifecycle.create_flow(document=json.loads(SPEC_EXAMPLE.read_text(encoding="utf-8")))
    Customer.objects.create(external_id="c-1", email="ada@example.com")
    Segment.objects.create(slug="newsletter", name="Newsletter")
    PromoPool.objects.create(slug="welcome", name="Welcome")
    return {"flow_id": flow.pk, "external_id": "c-1", "slug": "newsletter"}


def _run(operation, strategy, headers, calls: list) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        calls.append((operation.method.upper(), operation.path, response.status_code))

    check()


@pytest.fixture
def keep_test_connection():
    """The WSGI app closes "old" connections at the end of each request; on
    PostgreSQL that would close the test's transaction. Django's test client
    does the same as this while it calls the app."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
def test_it_answers_every_operation_of_the_schema_without_5xx_and_as_documented(api_key, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": None}}
    real = _real_objects()
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    headers = {"Authorization": f"Api-Key {api_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    calls: list[tuple[str, str, int]] = []
    for operation in operations:
        names = {parameter.name for parameter in operation.path_parameters}
        fixed = {name: value for name, value in real.items() if name in names}
        if operation.path.startswith("/api/v1/segments/") or operation.path.startswith(
            "/api/v1/promo-pools/"
        ):
            fixed["slug"] = "welcome" if "promo-pools" in operation.path else "newsletter"
        elif operation.path.startswith("/api/v1/templates/"):
            fixed["slug"] = "confirm"
        _run(operation, operation.as_strategy(GenerationMode.POSITIVE), headers, calls)
        if fixed:
            _run(
                operation,
                operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
                headers,
                calls,
            )
        # Unsatisfiable: nothing in this operation can be invalid (a free-form string in the path).
        with contextlib.suppress(Unsatisfiable):
            _run(operation, operation.as_strategy(GenerationMode.NEGATIVE), headers, calls)
    assert len(calls) >= 200
    # Real objects were reached, not only 404s.
    assert sum(1 for _method, _path, code in calls if 200 <= code < 300) >= 40
