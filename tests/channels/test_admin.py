"""The channels admin: templates (filtered by channel and purpose) and the
read-only outbox (filtered by status and channel, with the reason shown)."""

import pytest
from django.urls import reverse

from channels.models import Message, Template
from customers.models import Customer


@pytest.fixture
def admin_user(db, django_user_model):
    # No usable password: force_login needs none, and hashing one is slow.
    return django_user_model.objects.create_superuser("admin", "admin@example.com", password=None)


def add_rows(count: int, *, start: int = 0) -> None:
    for index in range(start, start + count):
        customer = Customer.objects.create(external_id=f"c{index}", email=f"c{index}@example.com")
        template = Template.objects.create(
            slug=f"t{index}",
            name=f"Template {index}",
            channel="email" if index % 2 == 0 else "sms",
            purpose="service" if index % 3 == 0 else "marketing",
            subject="Hello",
            text="Hi {{ customer.first_name }}",
        )
        Message.objects.create(
            customer=customer,
            template=template,
            template_slug=template.slug,
            channel=template.channel,
            status="not_sent" if index % 2 else "sent",
            reason="unsubscribed" if index % 2 else "",
        )


def url(model, view="changelist", *args) -> str:
    return reverse(f"admin:channels_{model._meta.model_name}_{view}", args=args)


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Template, Message], ids=lambda m: m.__name__)
def test_every_page_renders(admin_client, model):
    add_rows(3)
    obj = model.objects.order_by("pk").first()

    assert admin_client.get(url(model)).status_code == 200
    assert admin_client.get(url(model, "change", obj.pk)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Template, Message], ids=lambda m: m.__name__)
def test_a_list_runs_the_same_queries_for_1_and_20_rows(admin_client, model, django_assert_max_num_queries):
    add_rows(1)
    with django_assert_max_num_queries(8) as one:
        assert admin_client.get(url(model)).status_code == 200

    add_rows(19, start=1)
    with django_assert_max_num_queries(8) as twenty:
        assert admin_client.get(url(model)).status_code == 200
    assert len(twenty.captured_queries) == len(one.captured_queries)


@pytest.mark.django_db
def test_templates_are_filtered_by_channel_and_purpose(admin_client):
    add_rows(6)

    response = admin_client.get(url(Template), {"channel__exact": "email", "purpose__exact": "service"})

    assert sorted(t.slug for t in response.context["cl"].result_list) == ["t0"]


@pytest.mark.django_db
def test_a_template_is_created_in_the_admin(admin_client):
    response = admin_client.post(
        url(Template, "add"),
        {
            "slug": "confirm",
            "name": "Confirm",
            "channel": "email",
            "purpose": "service",
            "subject": "Please confirm your subscription",
            "text": "Hi",
            "html": "",
            "method": "POST",
            "url": "",
            "headers": "{}",
            "secret": "s3cret",
        },
    )

    assert response.status_code == 302
    assert Template.objects.get().purpose == "service"


@pytest.mark.django_db
def test_the_outbox_is_filtered_by_status_and_channel_and_shows_the_reason(admin_client):
    add_rows(4)

    response = admin_client.get(url(Message), {"status__exact": "not_sent", "channel__exact": "sms"})

    assert sorted(m.template_slug for m in response.context["cl"].result_list) == ["t1", "t3"]
    assert "unsubscribed" in response.content.decode()


@pytest.mark.django_db
def test_outbox_messages_are_read_only(admin_client):
    add_rows(1)
    message = Message.objects.get()

    assert admin_client.get(url(Message, "add")).status_code == 403
    assert admin_client.get(url(Message, "change", message.pk)).context["has_change_permission"] is False
    assert admin_client.get(url(Message, "delete", message.pk)).status_code == 403
