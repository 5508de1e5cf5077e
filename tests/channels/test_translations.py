"""Localised templates (SPEC §13): the customer's locale through the API,
the import command and the admin; template translations checked on save;
the translation a message uses (exact, language, default) over real SMTP;
the admin preview per locale."""

from __future__ import annotations

import email
import email.policy
import json

import pytest
from django.core.management import call_command

from channels.delivery import deliver_due
from customers.models import Customer
from tests.channels.conftest import queue_one

pytestmark = pytest.mark.django_db

TRANSLATIONS = {
    "de": {"subject": "Hallo {{ customer.first_name }}", "text": "Guten Tag"},
    "pt-BR": {"subject": "Olá {{ customer.first_name }}", "text": "Bom dia (Brasil)"},
    "pt": {"subject": "Olá", "text": "Bom dia (Portugal)"},
}


@pytest.fixture
def api(db):
    from rest_framework.test import APIClient

    from maestra.api.models import ApiKey

    _record, key = ApiKey.objects.create_key(name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def _template_body(**fields) -> dict:
    return {
        "slug": "hello",
        "name": "Hello",
        "channel": "email",
        "purpose": "service",
        "subject": "Hello {{ customer.first_name }}",
        "text": "Good day",
        "translations": TRANSLATIONS,
        **fields,
    }


def test_a_customer_locale_goes_through_the_api_in_canonical_case(api):
    response = api.put("/api/v1/customers/c-1", {"email": "a@example.com", "locale": "pt-br"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["locale"] == "pt-BR"
    assert api.get("/api/v1/customers/c-1").json()["locale"] == "pt-BR"
    response = api.put("/api/v1/customers/c-1", {"locale": None}, format="json")
    assert response.json()["locale"] == ""


def test_a_bad_locale_is_a_400_naming_the_field(api):
    response = api.put("/api/v1/customers/c-1", {"locale": "german!"}, format="json")
    assert response.status_code == 400
    [problem] = response.json()["errors"]
    assert problem["field"] == "locale"
    assert "BCP 47" in problem["message"]
    assert not Customer.objects.filter(external_id="c-1").exists()


def test_the_import_command_reads_the_locale_column(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("external_id,email,locale\nc-1,a@example.com,de\nc-2,b@example.com,pt_BR\n")
    call_command("import_customers", str(path))
    assert dict(Customer.objects.values_list("external_id", "locale")) == {"c-1": "de", "c-2": "pt-BR"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"external_id": "c-3", "locale": "x"}) + "\n")
    with pytest.raises(Exception, match="locale"):
        call_command("import_customers", str(bad))
    assert not Customer.objects.filter(external_id="c-3").exists()


def test_the_admin_checks_the_locale(admin_client):
    response = admin_client.post(
        "/admin/customers/customer/add/",
        {
            "external_id": "c-9",
            "locale": "not a tag",
            "email_valid": "on",
            "push_tokens": "{}",
            "fields": "{}",
            "subscriptions-TOTAL_FORMS": "0",
            "subscriptions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "not a BCP 47 language tag" in response.content.decode()
    response = admin_client.post(
        "/admin/customers/customer/add/",
        {
            "external_id": "c-9",
            "locale": "de-at",
            "email_valid": "on",
            "push_tokens": "{}",
            "fields": "{}",
            "subscriptions-TOTAL_FORMS": "0",
            "subscriptions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert Customer.objects.get(external_id="c-9").locale == "de-AT"


def test_translations_are_saved_and_shown_by_the_api(api):
    response = api.post("/api/v1/templates", _template_body(), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["translations"] == TRANSLATIONS


@pytest.mark.parametrize(
    ("translations", "field"),
    [
        ({"de": {"subject": "{% if %}"}}, "translations.de.subject"),
        ({"de": {"html": "{{ customer.first_name|nosuchfilter }}"}}, "translations.de.html"),
        (
            {
                "de": {
                    "text": "{% for x in '1234567890'|make_list %}{% for y in '1234567890'|make_list %}"
                    "{% for z in '1234567890'|make_list %}{{ customer.first_name|ljust:200 }}"
                    "{% endfor %}{% endfor %}{% endfor %}" * 10
                }
            },
            "translations.de.text",
        ),
        ({"deutsch!": {"text": "x"}}, "translations.deutsch!"),
        ({"pt-br": {"text": "x"}}, "translations.pt-br"),
        ({"de": {"body": "x"}}, "translations.de.body"),
        ({"de": "Hallo"}, "translations.de"),
        (["de"], "translations"),
    ],
)
def test_a_bad_translation_is_a_400_naming_the_field(api, translations, field):
    response = api.post("/api/v1/templates", _template_body(translations=translations), format="json")
    assert response.status_code == 400, response.json()
    assert field in [problem["field"] for problem in response.json()["errors"]], response.json()


@pytest.mark.parametrize(
    ("locale", "subject", "text"),
    [
        ("de", "Hallo Ann", "Guten Tag"),  # exact
        ("de-CH", "Hallo Ann", "Guten Tag"),  # its language
        ("pt-BR", "Olá Ann", "Bom dia (Brasil)"),  # exact before language
        ("pt-PT", "Olá", "Bom dia (Portugal)"),
        ("fr", "Hello Ann", "Good day"),  # the default text
        ("", "Hello Ann", "Good day"),
    ],
)
def test_a_message_uses_the_exact_locale_else_its_language_else_the_default(
    smtp_server, make_template, make_customer, locale, subject, text
):
    make_template(
        "hello",
        purpose="service",
        subject="Hello {{ customer.first_name }}",
        text="Good day",
        translations=TRANSLATIONS,
    )
    customer = make_customer(locale=locale)
    row = queue_one(customer, "hello")
    assert deliver_due()["sent"] == 1, row.reason
    [envelope] = smtp_server.envelopes
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert message["Subject"] == subject
    assert message.get_body(("plain",)).get_content().strip() == text


def test_the_admin_preview_renders_each_locale(admin_client, make_template, make_customer):
    template = make_template(
        "hello",
        purpose="service",
        subject="Hello {{ customer.first_name }}",
        text="Good day",
        translations=TRANSLATIONS,
    )
    make_customer(external_id="ana", locale="pt-BR", first_name="Ana")
    url = f"/admin/channels/template/{template.pk}/preview/"
    page = admin_client.get(url, {"customer": "ana"}).content.decode()
    assert "Olá Ana" in page and 'value="pt-BR"' in page  # the customer's own locale
    page = admin_client.get(url, {"customer": "ana", "locale": "de"}).content.decode()
    assert "Hallo Ana" in page
    page = admin_client.get(url, {"customer": "ana", "locale": "default"}).content.decode()
    assert "Hello Ana" in page
    page = admin_client.get(url, {"locale": "de"}).content.decode()
    assert "Hallo Alex" in page  # the sample customer


def _rows(*rows) -> dict:
    """The admin form's translation rows (channels.admin_forms.TranslationsWidget)."""
    data = {"translations-count": str(len(rows))}
    for index, row in enumerate(rows):
        data.update({f"translations-{index}-{key}": value for key, value in row.items()})
    return data


def test_the_admin_form_edits_translations_as_rows_and_checks_them(admin_client):
    from channels.models import Template
    from tests.channels.conftest import ADMIN_FORM

    form = {**ADMIN_FORM, **_rows({"locale": "de", "subject": "{% if %}", "text": "Hallo"})}
    response = admin_client.post("/admin/channels/template/add/", form)
    assert response.status_code == 200
    page = response.content.decode()
    assert "de.subject: template syntax error" in page
    assert 'value="{% if %}"' in page  # the rows come back as typed

    form = {**ADMIN_FORM, **_rows({"locale": "pt-br", "subject": "Olá"}, {"locale": "PT-BR", "text": "x"})}
    response = admin_client.post("/admin/channels/template/add/", form)
    assert "pt-BR is there twice" in response.content.decode()

    form = {
        **ADMIN_FORM,
        **_rows(
            {"locale": "pt-br", "subject": "Olá", "text": "Oi", "html": ""}, {"locale": "", "subject": ""}
        ),
    }
    response = admin_client.post("/admin/channels/template/add/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    template = Template.objects.get(slug="news")
    assert template.translations == {"pt-BR": {"subject": "Olá", "text": "Oi", "html": ""}}
    page = admin_client.get(f"/admin/channels/template/{template.pk}/change/").content.decode()
    assert 'name="translations-0-locale" value="pt-BR"' in page
    assert 'name="translations-count" value="3"' in page  # the stored one and two empty rows

    # Emptying the row removes the translation.
    form = {**ADMIN_FORM, **_rows({"locale": "", "subject": "", "text": "", "html": ""})}
    assert admin_client.post(f"/admin/channels/template/{template.pk}/change/", form).status_code == 302
    template.refresh_from_db()
    assert template.translations == {}


def test_the_admin_form_sets_tracking_with_choices(admin_client):
    from channels.models import Template
    from tests.channels.conftest import ADMIN_FORM

    response = admin_client.post(
        "/admin/channels/template/add/", {**ADMIN_FORM, "track_opens": "no", "track_clicks": ""}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    template = Template.objects.get(slug="news")
    assert template.track == {"opens": False}
    page = admin_client.get(f"/admin/channels/template/{template.pk}/change/").content.decode()
    assert '<option value="no" selected>' in page
    response = admin_client.post(
        "/admin/channels/template/add/",
        {**ADMIN_FORM, "slug": "sms1", "channel": "sms", "track_clicks": "yes"},
    )
    assert response.status_code == 200
    assert "only email templates can be tracked" in response.content.decode()
