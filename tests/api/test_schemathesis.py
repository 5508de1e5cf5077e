"""Schemathesis over the whole OpenAPI schema, in process (WSGI), with a key
that has every scope:

- every operation goes through schemathesis's examples, coverage and
  fuzzing phases (valid and invalid data; with random ids and, for each
  case, again with the ids of real objects);
- a state machine follows the links schemathesis infers between operations
  (create a flow, then read, rename, launch, pause, duplicate it; create a
  template, segment or promo pool, then read and change it).

No request gets a 5xx; every response conforms to the schema (status code,
content type, body, headers); what the schema calls invalid is refused; every
error is the JSON error shape. One check is left out: `positive_data_acceptance`
expects every schema-valid request to succeed, but the API also judges what
a schema cannot say (a rule's paths, template syntax, a time zone, an unknown
customer) and refuses it with a 400 naming the problem — that is the contract.

Deterministic for CI: derandomized generation, a fixed number of fuzzing
examples and state machine runs. The operations are separate test items, so
pytest-xdist spreads them over its workers.
"""

import contextlib

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from customers.models import Customer, PromoPool, Segment
from flows import lifecycle
from maestra.api.models import ApiKey

# Fuzzing examples per operation (the examples and coverage phases add their own cases).
EXAMPLES = 10
# State machine: scenarios, and calls per scenario.
SCENARIOS = 25
STEPS = 6

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
schema.config.generation.update(max_examples=EXAMPLES, deterministic=True)

HYPOTHESIS = settings(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))


def json_errors(ctx, response, case) -> None:
    """Every error is JSON {"errors": [{"field", "message", ...}]}, never HTML."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]  # lower-case keys, list values
    assert content_type.startswith("application/json"), f"{response.status_code} answered as {content_type!r}"
    errors = response.json().get("errors")
    assert isinstance(errors, list) and errors, "no errors list"
    assert all(isinstance(item, dict) and {"field", "message"} <= set(item) for item in errors), errors


CHECKS = {"additional_checks": [json_errors], "excluded_checks": [positive_data_acceptance]}


@contextlib.contextmanager
def rolled_back():
    """Each example (and each state machine scenario) starts from the same
    data: what a request wrote is undone after it. Hypothesis replays
    examples while it generates; were the data to drift between runs, the
    same choices would meet other answers (FlakyStrategyDefinition)."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


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


@pytest.fixture
def real(db, settings, spec_document, templates) -> dict[str, object]:
    """Real objects to aim at, the path parameter values that name them."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": None}}
    flow = lifecycle.create_flow(document=spec_document)
    Customer.objects.create(external_id="c-1", email="ada@example.com")
    Segment.objects.create(slug="newsletter", name="Newsletter")
    PromoPool.objects.create(slug="welcome", name="Welcome")
    return {"flow_id": flow.pk, "external_id": "c-1", "templates": "confirm", "segments": "newsletter"}


@pytest.fixture
def headers(db) -> dict[str, str]:
    _record, key = ApiKey.objects.create_key(name="schemathesis")
    return {"Authorization": f"Api-Key {key}"}


def _real_path_parameters(case, real: dict) -> dict | None:
    names = set(case.path_parameters or {})
    if not names:
        return None
    values = {name: real[name] for name in names if name in real}
    if "slug" in names:
        values["slug"] = "welcome" if "/promo-pools/" in case.path else real[case.path.split("/")[3]]
    return values


@pytest.fixture
def reached():
    """The statuses of the calls made with real ids: at least one of them
    found its object (a 404 for all would mean the real ids were wrong)."""
    statuses: list[int] = []
    yield statuses
    assert not statuses or any(status != 404 for status in statuses), statuses


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
@schema.parametrize()
@HYPOTHESIS
def test_every_operation_answers_as_documented(case, real, headers, reached):
    with rolled_back():
        case.call_and_validate(headers=headers, **CHECKS)
    values = _real_path_parameters(case, real)
    if values:
        # The same request aimed at a real object: a new case, since the
        # generated one may be a negative case whose invalid part was a path
        # parameter replaced here.
        aimed = case.operation.Case(
            method=case.method,
            path_parameters={**case.path_parameters, **values},
            headers=dict(case.headers or {}),
            query=case.query,
            body=case.body,
            media_type=case.media_type,
        )
        with rolled_back():
            reached.append(aimed.call_and_validate(headers=headers, **CHECKS).status_code)


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
def test_chains_of_linked_operations_answer_as_documented(real, headers):
    steps: list[tuple[str, str, int]] = []

    class Workflow(schema.as_state_machine()):
        def setup(self):
            self.scenario = rolled_back()
            self.scenario.__enter__()

        def teardown(self):
            self.scenario.__exit__(None, None, None)

        def get_call_kwargs(self, case):
            return {"headers": headers}

        def after_call(self, response, case):
            steps.append((case.method, case.path, response.status_code))

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, headers=kwargs.get("headers"), transport_kwargs=kwargs, **CHECKS)

    Workflow.run(settings=settings(HYPOTHESIS, max_examples=SCENARIOS, stateful_step_count=STEPS))

    created = {(method, path) for method, path, status in steps if status == 201}
    # Objects were made and then used through the inferred links.
    assert ("POST", "/api/v1/flows") in created
    assert any(path.startswith("/api/v1/flows/{flow_id}") and status < 400 for _m, path, status in steps)
