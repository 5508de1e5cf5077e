"""Template edits leave an audit entry (channels/templates.py), whether they
come from the admin or the API: who, which template, which fields changed
(never their content)."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from channels.models import Message, Template
from channels.templates import TemplateSlugTaken, delete_templates, save_template
from maestra.api.models import ApiKey
from maestra.audit.models import AuditEntry
from tests.channels.conftest import ADMIN_FORM, queue_one

pytestmark = pytest.mark.django_db

BODY = {"slug": "welcome", "name": "Welcome", "channel": "email", "subject": "Hi", "text": "Hello"}


@pytest.fixture
def staff(db, django_user_model):
    return django_user_model.objects.create_superuser("ann", "ann@example.com", password=None)


@pytest.fixture
def api():
    cache.clear()  # the API's throttle counters
    record, key = ApiKey.objects.create_key(name="cms")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    client.prefix = record.prefix
    return client


def entries() -> list[tuple]:
    return list(
        AuditEntry.objects.order_by("id").values_list(
            "action", "user__username", "actor", "subject_repr", "data"
        )
    )


def admin_url(view: str, *args) -> str:
    return reverse(f"admin:channels_template_{view}", args=args)


def test_the_admin_logs_who_created_changed_and_deleted_a_template(client, staff):
    client.force_login(staff)
    assert client.post(admin_url("add"), ADMIN_FORM).status_code == 302
    template = Template.objects.get()
    assert client.post(admin_url("change", template.pk), {**ADMIN_FORM, "text": "Hello"}).status_code == 302
    # Saved again as it is: nothing changed, nothing to log.
    assert client.post(admin_url("change", template.pk), {**ADMIN_FORM, "text": "Hello"}).status_code == 302
    assert client.post(admin_url("delete", template.pk), {"post": "yes"}).status_code == 302

    assert entries() == [
        ("template.created", "ann", "", "template news", {"channel": "email", "purpose": "marketing"}),
        ("template.changed", "ann", "", "template news", {"fields": ["text"]}),
        ("template.deleted", "ann", "", "template news", {"channel": "email", "purpose": "marketing"}),
    ]
    assert not Template.objects.exists()


def test_the_admins_bulk_delete_logs_each_template(client, staff):
    first = Template.objects.create(slug="a", name="A", channel="sms", text="Hi")
    second = Template.objects.create(slug="b", name="B", channel="email", text="Hi")
    client.force_login(staff)

    response = client.post(
        reverse("admin:channels_template_changelist"),
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert not Template.objects.exists()
    assert sorted((action, subject) for action, _u, _a, subject, _d in entries()) == [
        ("template.deleted", "template a"),
        ("template.deleted", "template b"),
    ]


def test_an_admin_change_stamps_updated_at(client, staff):
    with time_machine.travel(datetime(2025, 6, 1, tzinfo=UTC), tick=False):
        client.force_login(staff)
        client.post(admin_url("add"), ADMIN_FORM)
    with time_machine.travel(datetime(2025, 6, 2, tzinfo=UTC), tick=False):
        client.force_login(staff)
        client.post(
            admin_url("change", Template.objects.get().pk), {**ADMIN_FORM, "name": "News of the week"}
        )
    template = Template.objects.get()
    assert (template.created_at.day, template.updated_at.day) == (1, 2)


def test_the_api_logs_the_key_and_the_changed_fields_never_their_content(api):
    assert api.post("/api/v1/templates", BODY, format="json").status_code == 201
    api.patch("/api/v1/templates/welcome", {"text": "Bye", "secret": "x" * 40}, format="json")
    api.put("/api/v1/templates/welcome", {**BODY, "text": "Bye"}, format="json")
    assert api.delete("/api/v1/templates/welcome").status_code == 204

    actor = f"api key {api.prefix}"
    assert entries() == [
        ("template.created", None, actor, "template welcome", {"channel": "email", "purpose": "marketing"}),
        ("template.changed", None, actor, "template welcome", {"fields": ["text", "secret"]}),
        ("template.deleted", None, actor, "template welcome", {"channel": "email", "purpose": "marketing"}),
    ]
    assert "x" * 40 not in str(entries()) and "Bye" not in str(entries())


def test_a_refused_body_logs_nothing(api):
    assert api.post("/api/v1/templates", {**BODY, "text": "{% if %}"}, format="json").status_code == 400
    assert entries() == []


def test_a_slug_taken_meanwhile_is_a_409_and_logs_nothing():
    Template.objects.create(slug="welcome", name="First", channel="email", text="Hi")

    with pytest.raises(TemplateSlugTaken) as raised:
        save_template(template=Template(slug="welcome", name="Second", channel="email", text="Hi"))

    assert (raised.value.status, raised.value.api_errors()) == (
        409,
        [{"field": "slug", "message": "a template with this slug already exists"}],
    )
    assert entries() == []


def test_deleting_keeps_the_templates_messages_and_says_how_many(make_customer, make_template):
    template = make_template("news")
    queue_one(make_customer(subscriptions={"email": "subscribed"}), "news")

    assert delete_templates(templates=[template], actor="command") == 1
    assert Message.objects.get().template_id is None
    assert entries()[0][:3] == ("template.deleted", None, "command")


def test_the_api_names_the_staff_member_of_a_session(staff):
    client = APIClient()
    client.force_login(staff)
    assert client.post("/api/v1/templates", BODY, format="json").status_code == 201
    assert entries()[0][:3] == ("template.created", "ann", "")
