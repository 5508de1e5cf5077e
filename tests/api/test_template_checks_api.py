"""The API refuses a template that does not pass the check on save
(channels.rendering.template_problems, as the admin form does): a 400 naming
the field, nothing stored."""

import pytest

from channels.models import Template
from tests.channels.test_template_checks import NESTED_LOOPS

API_BODY = {"slug": "news", "name": "News", "channel": "email", "subject": "Hello", "text": "Hi"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"text": NESTED_LOOPS}, "text"),
        ({"subject": "{{ 1.5|floatformat:900 }}"}, "subject"),
        ({"html": '{% for a in "ab" %}{% endfor'}, "html"),
    ],
)
def test_the_api_refuses_with_a_400_naming_the_field(api, changes, field):
    response = api.post("/api/v1/templates", {**API_BODY, **changes}, format="json")

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert not Template.objects.exists()


@pytest.mark.django_db
def test_the_api_checks_a_patch_against_the_whole_template(api):
    assert api.post("/api/v1/templates", API_BODY, format="json").status_code == 201

    response = api.patch("/api/v1/templates/news", {"text": NESTED_LOOPS}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "text"
    assert "does not render for a sample customer" in response.json()["errors"][0]["message"]
    assert Template.objects.get().text == "Hi"


@pytest.mark.django_db
def test_send_test_of_a_template_past_the_budget_answers_with_the_render_error(api):
    from customers.models import Customer

    Customer.objects.create(external_id="ann", email="ann@example.com")
    # A row saved before templates were checked on save.
    Template.objects.create(slug="bomb", name="Bomb", channel="email", subject="S", text=NESTED_LOOPS)

    response = api.post("/api/v1/templates/bomb/send-test", {"customer": "ann"}, format="json")

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["reason"]) == (
        "failed",
        "render_error: text: the loops would run more than 100,000 times in all",
    )
