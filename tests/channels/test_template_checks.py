"""Templates are checked when saved (SPEC §12), by one function
(channels.templates.template_problems) in the admin form and the API: syntax,
unknown tags and filters, webhook headers, the channel's required parts, and
a render for a sample customer within the render budget. The API's side is
in tests/api/test_template_checks_api.py."""

import pytest
from django.urls import reverse

from channels.models import Template
from channels.templates import template_problems
from tests.channels.conftest import ADMIN_FORM

NESTED_LOOPS = "".join(f'{{% for v{i} in "0123456789" %}}' for i in range(6)) + "x" + "{% endfor %}" * 6


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"subject": "{% if %}"},
            "subject",
            "template syntax error: Unexpected end of expression in if tag.",
        ),
        ({"text": "{{ x|shout }}"}, "text", "template syntax error: Invalid filter: 'shout'"),
        (
            {"html": "{% load static %}"},
            "html",
            "template syntax error: Invalid block tag on line 1: 'load'. "
            "Did you forget to register or load this tag?",
        ),
        (
            {"text": NESTED_LOOPS},
            "text",
            "does not render for a sample customer: the loops would run more than 100,000 times in all",
        ),
        (
            {"text": "{{ 1.5|floatformat:900 }}"},
            "text",
            "does not render for a sample customer: the floatformat filter takes at most 200 digits",
        ),
        ({"text": "", "html": " "}, "text", "an email template needs a text or an html body"),
    ],
)
def test_it_names_the_field_and_the_problem(changes, field, message):
    values = {"channel": "email", "subject": "S", "text": "T", **changes}
    assert template_problems(values) == {field: message}
    assert template_problems(Template(**values)) == {field: message}


def test_it_checks_webhook_headers_and_urls():
    webhook = {"channel": "webhook", "url": "https://crm.example/{{ customer.external_id }}", "text": "{}"}
    assert template_problems(webhook) == {}
    assert template_problems({**webhook, "url": " "}) == {"url": "a webhook template needs a url"}
    assert template_problems({**webhook, "headers": {"X-Id": "{% if %}"}}) == {
        "headers.X-Id": "template syntax error: Unexpected end of expression in if tag."
    }
    assert template_problems({**webhook, "headers": {"X-Id": 7}}) == {"headers.X-Id": "must be text"}
    assert template_problems({**webhook, "headers": ["X-Id"]}) == {
        "headers": "must be an object of header names and their texts"
    }


def test_what_only_real_data_can_decide_is_left_to_the_send():
    # Empty for the sample customer (no fields, no event), a missing filter
    # argument, a URL that is a variable: all fine for a customer who has them.
    assert template_problems({"channel": "sms", "text": "{{ customer.fields.code }}"}) == {}
    assert template_problems({"channel": "sms", "text": "{{ event.name|ljust:event.width }}"}) == {}
    assert template_problems({"channel": "webhook", "url": "{{ customer.fields.hook }}", "text": ""}) == {}


def test_the_demo_templates_pass_the_check():
    from flows.management.commands.load_demo import TEMPLATES

    for spec in TEMPLATES:
        assert template_problems({**spec, "channel": "email"}) == {}, spec["slug"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"subject": "{% if %}"},
            "subject",
            "template syntax error: Unexpected end of expression in if tag.",
        ),
        (
            {"text": NESTED_LOOPS},
            "text",
            "does not render for a sample customer: the loops would run more than 100,000 times in all",
        ),
        (
            {"channel": "webhook", "url": "https://a.example", "headers": '{"X-Id": "{% if %}"}'},
            "headers",
            "X-Id: template syntax error: Unexpected end of expression in if tag.",
        ),
        ({"channel": "sms", "text": ""}, "text", "an SMS template needs a text"),
    ],
)
def test_the_admin_form_shows_the_problem_on_the_field(admin_client, changes, field, message):
    response = admin_client.post(reverse("admin:channels_template_add"), {**ADMIN_FORM, **changes})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {field: [message]}
    assert not Template.objects.exists()


@pytest.mark.django_db
def test_the_admin_form_saves_a_good_template_and_refuses_breaking_it(admin_client):
    assert admin_client.post(reverse("admin:channels_template_add"), ADMIN_FORM).status_code == 302
    template = Template.objects.get()
    change = reverse("admin:channels_template_change", args=[template.pk])

    response = admin_client.post(change, {**ADMIN_FORM, "text": "{% for x in customer.fields %}"})

    assert response.status_code == 200
    assert "text" in response.context["adminform"].form.errors
    template.refresh_from_db()
    assert template.text == "Hi"
