"""Shared fixtures for the flows tests."""

import copy
import json
from pathlib import Path

import pytest

from channels.models import Template

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
