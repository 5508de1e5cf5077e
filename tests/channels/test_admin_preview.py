"""Template preview in the admin: rendered for a chosen customer (or a sample
one) exactly as a send would render it; a RenderError is shown as text."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from channels.models import Template
from customers.models import Customer


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", password=None)


@pytest.fixture
def anna(db):
    return Customer.objects.create(
        external_id="anna-1",
        email="anna@example.com",
        phone="+4915100000001",
        first_name="Anna",
        fields={"tier": "gold"},
    )


def template(**fields) -> Template:
    defaults = {"slug": "t", "name": "T", "channel": "email", "subject": "Hi", "text": "Hello"}
    return Template.objects.create(**{**defaults, **fields})


def preview_url(tpl: Template) -> str:
    return reverse("admin:channels_template_preview", args=[tpl.pk])


@pytest.mark.django_db
def test_it_renders_an_email_for_the_chosen_customer(admin_client, anna):
    tpl = template(
        subject="Hello {{ customer.first_name }}",
        text="Your tier: {{ customer.fields.tier }}",
        html="<p>Hi {{ customer.first_name }} <b>{{ customer.fields.tier }}</b></p>",
    )

    for query in ("anna-1", "ANNA@example.com", "+4915100000001"):
        response = admin_client.get(preview_url(tpl), {"customer": query})
        assert response.status_code == 200
        parts = {name: text for name, text, _html in response.context["parts"]}
        assert parts == {
            "subject": "Hello Anna",
            "text": "Your tier: gold",
            "html": "<p>Hi Anna <b>gold</b></p>",
        }
        assert response.context["chosen_customer"] == anna
    page = response.content.decode()
    assert 'sandbox=""' in page and "srcdoc=" in page  # HTML shown without running its scripts


@pytest.mark.django_db
def test_without_a_customer_it_renders_for_a_sample_and_an_unknown_one_is_said(admin_client):
    tpl = template(channel="sms", subject="", text="Hi {{ customer.first_name }}, code {{ promo_code }}")

    sample = admin_client.get(preview_url(tpl))
    unknown = admin_client.get(preview_url(tpl), {"customer": "nobody"})

    assert [(n, t) for n, t, _ in sample.context["parts"]] == [("text", "Hi Alex, code PREVIEW-CODE")]
    assert "a sample customer" in sample.content.decode()
    assert unknown.context["parts"] == []
    assert "No customer has the external id, email or phone “nobody”" in unknown.content.decode()


@pytest.mark.django_db
def test_it_shows_the_render_error_text(admin_client, anna):
    broken = template(slug="broken", subject="{{ customer.first_name|nosuchfilter }}")
    empty_sms = template(slug="empty", channel="sms", subject="", text="   ")

    first = admin_client.get(preview_url(broken), {"customer": "anna-1"})
    second = admin_client.get(preview_url(empty_sms), {"customer": "anna-1"})

    assert first.status_code == 200
    assert first.context["render_error"].startswith("subject:")
    assert "nosuchfilter" in first.content.decode()
    assert second.context["render_error"] == "text: the SMS text is empty"
    assert "The template cannot be rendered: text: the SMS text is empty" in second.content.decode()


@pytest.mark.django_db
def test_it_renders_webhook_and_push_templates(admin_client, anna):
    hook = template(
        slug="hook",
        channel="webhook",
        subject="",
        url="https://crm.example.com/{{ customer.external_id }}",
        headers={"X-Tier": "{{ customer.fields.tier }}"},
        text='{"email": "{{ customer.email }}"}',
    )
    push = template(slug="push", channel="web_push", subject="Hey {{ customer.first_name }}", text="Body")

    hook_parts = {
        n: t for n, t, _ in admin_client.get(preview_url(hook), {"customer": "anna-1"}).context["parts"]
    }
    push_parts = {
        n: t for n, t, _ in admin_client.get(preview_url(push), {"customer": "anna-1"}).context["parts"]
    }

    assert hook_parts["url"] == "https://crm.example.com/anna-1"
    assert hook_parts["method"] == "POST"
    assert '"X-Tier": "gold"' in hook_parts["headers"]
    assert hook_parts["body"] == '{"email": "anna@example.com"}'
    assert push_parts["title"] == "Hey Anna" and push_parts["body"] == "Body"


@pytest.mark.django_db
def test_the_change_page_links_to_the_preview_and_an_unknown_template_is_a_404(admin_client):
    tpl = template()
    change = admin_client.get(reverse("admin:channels_template_change", args=[tpl.pk])).content.decode()
    assert preview_url(tpl) in change
    assert admin_client.get(reverse("admin:channels_template_preview", args=[9999])).status_code == 404


@pytest.mark.django_db
def test_the_preview_needs_the_template_view_and_customer_view_permissions(anna, django_user_model):
    tpl = template()
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(preview_url(tpl)).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_template"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert client.get(preview_url(tpl)).status_code == 200
    # Looking a customer up needs the right to see customers.
    assert client.get(preview_url(tpl), {"customer": "anna-1"}).status_code == 403
