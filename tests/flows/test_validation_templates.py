"""A flow's validation renders each steps node's templates for a sample
customer (SPEC §12): the message templates its send steps name and its
set_field template values. A failure is an error on the node and the step's
field, so a flow that would fail at every send cannot be launched."""

import pytest

from channels import rendering
from channels.models import Template
from flows import lifecycle
from flows.document.validate import validate_document
from flows.models import Flow
from tests.channels.test_template_checks import NESTED_LOOPS
from tests.flows.conftest import steps_document

SEND = {"action": "send", "channel": "email", "template": "news"}


def legacy_template(**fields) -> Template:
    """A row as saved before templates were checked on save (straight into
    the table, past the admin form and the API)."""
    return Template.objects.create(
        **{"slug": "news", "name": "News", "channel": "email", "subject": "S", **fields}
    )


def errors(steps: list[dict]) -> list[dict]:
    return validate_document(steps_document(steps))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"text": "{% if %}"}, "text: Unexpected end of expression in if tag."),
        ({"text": "ok", "html": "<p>{{ customer|shout }}</p>"}, "html: Invalid filter: 'shout'"),
        ({"text": NESTED_LOOPS}, "text: the loops would run more than 100,000 times in all"),
        (
            {"subject": "{{ 1.5|floatformat:900 }}", "text": "ok"},
            "subject: the floatformat filter takes at most",
        ),
    ],
)
def test_a_send_step_whose_template_does_not_render_is_an_error_on_the_node(fields, problem):
    legacy_template(**fields)

    found = errors([{"action": "points", "amount": 1}, SEND])

    assert [(e["node"], e["field"]) for e in found] == [("act", "steps.1.template")]
    assert found[0]["message"].startswith(f"'news' does not render for a sample customer: {problem}")


@pytest.mark.django_db
def test_a_template_that_renders_for_the_sample_customer_is_fine():
    # Empty for the sample (no fields, no event) or missing a filter argument:
    # real customers may have the data, so only a real send can tell.
    legacy_template(text="{{ customer.fields.code }}{{ event.name|ljust:event.width }}")

    assert errors([SEND]) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{% if %}", "Unexpected end of expression in if tag."),
        ("{{ customer.first_name|shout }}", "Invalid filter: 'shout'"),
        (NESTED_LOOPS, "the loops would run more than 100,000 times in all"),
    ],
)
def test_a_set_field_template_that_does_not_render_is_an_error_on_its_value(value, problem):
    found = errors([{"action": "set_field", "field": "plan", "value": value}])

    assert found == [
        {
            "node": "act",
            "field": "steps.0.value",
            "message": f"the template does not render for a sample customer: {problem}",
        }
    ]


@pytest.mark.django_db
def test_set_field_values_that_are_not_templates_or_render_are_fine():
    steps = [
        {"action": "set_field", "field": "plan", "value": "{{ event.plan|default:'basic' }}"},
        {"action": "set_field", "field": "note", "value": "50% off {not a template}"},
        {"action": "set_field", "field": "tags", "value": ["a", "b"]},
    ]
    assert errors(steps) == []


@pytest.mark.django_db
def test_a_template_used_by_several_steps_is_rendered_once(monkeypatch):
    legacy_template(text="Hi {{ customer.first_name }}")
    calls = []
    monkeypatch.setattr(
        "flows.nodes.steps.sample_render_problem",
        lambda template: calls.append(template.slug) or rendering.sample_render_problem(template),
    )

    assert errors([SEND, SEND, SEND]) == []
    assert calls == ["news"]


@pytest.mark.django_db
def test_a_flow_with_a_template_that_cannot_render_cannot_be_launched():
    legacy_template(text=NESTED_LOOPS)

    flow = lifecycle.create_flow(document=steps_document([SEND]))

    assert flow.status == Flow.Status.DRAFT
    assert [e["field"] for e in flow.draft.errors] == ["steps.0.template"]
