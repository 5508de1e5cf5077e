"""Fixtures of the REST API tests: an API key and a client that sends it."""

import pytest
from rest_framework.test import APIClient

from maestra.api.models import ApiKey

# The flows tests' fixtures: the SPEC §11 document, its templates, and flows
# brought into any status through the lifecycle services.
from tests.flows.conftest import flow_in, invalid_document, spec_document, templates  # noqa: F401

# Throttle counters live in the (process-wide) cache: one test's requests
# must not count against the next test's budget.
from tests.maestra.kit import empty_cache  # noqa: F401


@pytest.fixture
def api_key(db) -> str:
    _record, key = ApiKey.objects.create_key(name="tests")
    return key


@pytest.fixture
def api(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return client
