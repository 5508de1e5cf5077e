"""Shared fixtures for the flows tests."""

import copy
import json
from pathlib import Path

import pytest

from channels.models import Template

# The real loopback servers (HTTP for webhooks, aiosmtpd for email) are the
# channels tests' fixtures, shared here rather than written twice.
from tests.channels.conftest import http_server, smtp_server  # noqa: F401
from tests.flows.engine_kit import email_templates

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_EXAMPLE = FIXTURES / "spec_example.json"


@pytest.fixture
def templates(db) -> dict[str, Template]:
    """The email templates the SPEC §11 example refers to ("confirm", "reminder")."""
    return {
        slug: Template.objects.create(
            slug=slug,
            name=slug.title(),
            channel="email",
            purpose=Template.Purpose.SERVICE,
            subject=f"{slug.title()} your subscription",
            text=f"Hello {{{{ customer.first_name }}}}, please {slug}.",
        )
        for slug in ("confirm", "reminder")
    }


@pytest.fixture
def spec_document() -> dict:
    """The SPEC §11 example document, parsed (key order as in the file). Valid
    once the `templates` fixture is in place. A fresh copy per test."""
    return copy.deepcopy(json.loads(SPEC_EXAMPLE.read_text(encoding="utf-8")))


@pytest.fixture
def invalid_document(spec_document) -> dict:
    """Well-formed, but its first steps node sends a template that does not exist."""
    document = copy.deepcopy(spec_document)
    document["nodes"][1]["config"]["steps"][0]["template"] = "no-such-template"
    return document


@pytest.fixture
def flow_in(templates, spec_document, invalid_document):
    """Factory: a flow brought into `status` through the lifecycle services
    (creating_draft, which only exists inside a transaction, is set directly).
    Live flows (active, paused) get a draft too when `with_draft` is set."""
    from flows import lifecycle
    from flows.models import Flow

    valid = json.dumps(spec_document)

    def make(status: str, *, with_draft: bool = True) -> Flow:
        if status == Flow.Status.DRAFT:
            return lifecycle.create_flow(document=invalid_document)
        flow = lifecycle.create_flow(document=valid)
        if status == Flow.Status.READY:
            return flow
        if status == Flow.Status.CREATING_DRAFT:
            Flow.objects.filter(pk=flow.pk).update(status=status)
            return Flow.objects.get(pk=flow.pk)
        if status == Flow.Status.TESTING:
            return lifecycle.start_test(flow=flow)
        flow = lifecycle.launch_flow(flow=flow, enqueue=False)
        if status == Flow.Status.LAUNCHING:
            return flow
        flow = lifecycle.finish_launch(flow_id=flow.pk)
        if status == Flow.Status.ARCHIVED:
            return lifecycle.archive_flow(flow=flow)
        if status == Flow.Status.PAUSED:
            flow = lifecycle.pause_flow(flow=flow)
        if with_draft:
            lifecycle.edit_flow(flow=flow)
        assert flow.status == status
        return Flow.objects.get(pk=flow.pk)

    return make


@pytest.fixture
def welcome(db) -> None:
    """The service email template "welcome" (the engine tests' one message)."""
    email_templates("welcome")


# --- Launched flows and real servers for the steps/actions tests ----------------


def steps_document(
    steps: list[dict],
    *,
    name: str = "Spring sale",
    event_type: str = "order_created",
    timezone: str = "UTC",
    relevance: str = "P1D",
    nodes: list[dict] | None = None,
    edges: list[dict] | None = None,
) -> dict:
    """A flow document: an event start on `event_type`, then one steps node
    "act" with `steps`. `nodes`/`edges` replace the graph when given."""
    return {
        "format": "maestra.flow/1",
        "name": name,
        "timezone": timezone,
        "launch_limit": {"mode": "every_time", "max_total": None},
        "nodes": nodes
        or [
            {"key": "start", "kind": "event", "config": {"event_type": event_type}},
            {"key": "act", "kind": "steps", "config": {"relevance": relevance, "steps": steps}},
        ],
        "edges": edges or [{"from": "start", "to": "act"}],
    }


@pytest.fixture
def launched(db):
    """Factory: create a flow from a document and bring it live (or into test
    mode with test=True) through the lifecycle services. Fails loudly when the
    document does not validate, so a test never runs a flow it did not mean."""
    from flows import lifecycle
    from flows.models import Flow

    def make(document: dict, *, test: bool = False) -> Flow:
        flow = lifecycle.create_flow(document=document)
        assert flow.status == Flow.Status.READY, flow.draft.errors
        if test:
            return lifecycle.start_test(flow=flow)
        lifecycle.launch_flow(flow=flow, enqueue=False)
        return lifecycle.finish_launch(flow_id=flow.pk)

    return make


@pytest.fixture
def post_events(db):
    """Store events from outside (depth 0) for customers by external id; the
    next tick matches them. Returns the stored event ids."""
    from django.utils import timezone as dj_timezone

    from customers.services import ensure_customers, store_events

    counter = iter(range(1, 10**9))

    def post(
        external_ids: list[str],
        event_type: str = "order_created",
        payload: dict | None = None,
        occurred_at=None,
    ):
        ids = ensure_customers(external_ids=external_ids)
        return store_events(
            events=[
                {
                    "external_id": f"evt-{next(counter)}",
                    "customer_id": ids[external_id],
                    "type": event_type,
                    "occurred_at": occurred_at or dj_timezone.now(),
                    "payload": payload or {},
                }
                for external_id in external_ids
            ]
        )["ids"]

    return post
