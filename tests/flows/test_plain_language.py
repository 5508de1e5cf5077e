"""Plain language (issue #14, item 5): every validation error reaches the
editor with a marketer-facing `text` (the code stays in `field`/`message`),
stop reasons read as sentences with their code as the tooltip, and the
JavaScript catalogue is served for the editor's scripts."""

import copy
import json

import pytest
from django.urls import reverse

from flows.document.validate import validate_document
from flows.models import Flow
from flows.nodes import REGISTRY
from flows.plain_language import STOP_REASONS, explain, stop_reason_text, where
from tests.flows.admin_kit import run_in

S = Flow.Status


# A validation error (field, message) and the text the marketer reads instead.
KNOWN_MESSAGES = [
    ("steps.0.template", "missing: the slug of the template to send", "Step 1: choose a template to send"),
    (
        "steps.2.template",
        "no template 'gone'",
        "Step 3: the template “gone” does not exist; choose another one",
    ),
    (
        "duration",
        "'' is not an ISO 8601 duration (e.g. P1D, PT2H30M, -P3D)",
        "Wait for: enter a length of time, e.g. 2 hours or 3 days",
    ),
    ("edges", "not reachable from the start node", "Nothing leads to this node: connect it to the flow"),
    ("schedule.end_at", "must be after start_at", "The end must be after the start"),
    ("variants", "percentages must add up to 100, not 90", "The percentages must add up to 100 (now 90)"),
]


@pytest.mark.parametrize(("field", "message", "text"), KNOWN_MESSAGES)
def test_known_messages_get_their_marketer_text(field, message, text):
    assert explain({"field": field, "message": message}) == text


def test_field_paths_read_as_words():
    assert where("steps.1.pool") == "Step 2, promo pool"
    assert where("branches.0.name") == "Branch 1, Name"
    assert where("rule.and.0.op") == "Rule"
    assert where("launch_limit.max_total") == "At most, in total"


@pytest.mark.django_db
def test_no_error_of_a_broken_document_reads_as_a_path_or_json(templates, spec_document):
    broken = copy.deepcopy(spec_document)
    broken["launch_limit"] = {"mode": "periodic", "period": None, "max_total": 0}
    broken["schedule"] = {"start_at": "2030-01-02T00:00:00+00:00", "end_at": "2030-01-01T00:00:00+00:00"}
    broken["nodes"][1]["config"] = {"relevance": "", "steps": [{"action": "send", "channel": "email"}]}
    broken["nodes"][2]["config"] = {"mode": "fixed", "duration": ""}
    broken["nodes"].append({"key": "lost", "kind": "wait", "config": {"mode": "fixed", "duration": "P1D"}})
    errors = validate_document(broken)
    assert len(errors) >= 6
    for error in errors:
        text = explain(error)
        assert text and "{" not in text and "ISO 8601" not in text, (error, text)
        if "." in error["field"]:
            assert error["field"] not in text, (error, text)


@pytest.mark.django_db
def test_the_editor_gets_texts_and_keeps_the_codes(admin_client, flow_in):
    flow = flow_in(S.DRAFT)  # its first steps node sends a template that does not exist
    config = admin_client.get(reverse("admin:flows_flow_change", args=[flow.pk])).context["canvas_config"]
    error = next(e for e in config["errors"] if e["field"] == "steps.0.template")
    assert error["message"].startswith("no template")
    assert error["text"].startswith("Step 1: the template")
    document = Flow.objects.get(pk=flow.pk).draft.document
    response = admin_client.post(
        reverse("admin:flows_flow_canvas_save", args=[flow.pk]),
        json.dumps({"document": document}),
        content_type="application/json",
    )
    assert all("text" in e and "message" in e for e in response.json()["errors"])


def test_every_stop_reason_of_the_engine_has_a_sentence():
    assert stop_reason_text("filter_failed") == "The customer did not pass the start filter."
    assert stop_reason_text("template_error: unknown tag") == (
        "The template could not be filled in (an error in the template). (unknown tag)"
    )
    assert stop_reason_text("something_new") == "something_new"
    from flows.selectors.monitoring import STEP_FAILURE_REASONS

    assert set(STEP_FAILURE_REASONS) <= set(STOP_REASONS)
    assert REGISTRY  # the kinds are loaded; their reasons are in STOP_REASONS (grep-checked above)


@pytest.mark.django_db
def test_the_monitoring_page_shows_stop_reasons_in_words(admin_client, launched, templates, spec_document):
    from customers.models import Customer
    from flows.models import Run

    flow = launched(spec_document)
    customer = Customer.objects.create(external_id="c1", email="c1@example.com")
    from django.utils import timezone

    now = timezone.now()
    run_in(
        flow,
        customer,
        status=Run.Status.STOPPED,
        stop_reason="promo_pool_empty",
        node_key="ask",
        ended_at=now,
        clock=now,
    )
    page = admin_client.get(reverse("admin:flows_monitoring") + "?show=steps").content.decode()
    assert 'title="promo_pool_empty">The promo pool had no free code left.</span>' in page


@pytest.mark.django_db
def test_the_javascript_catalogue_is_served(admin_client):
    response = admin_client.get(reverse("maestra-jsi18n"))
    assert response.status_code == 200
    assert b"gettext" in response.content
