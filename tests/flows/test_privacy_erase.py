"""Erase (right to be forgotten) and export of a customer: the service, the
API, the commands and the admin actions."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import models
from rest_framework.test import APIClient

from channels.models import Message
from customers.models import Customer, Subscription
from customers.services import store_events, upsert_customers
from flows import lifecycle
from flows.engine.tick import tick
from flows.models import NodePass, NodeStat, Run
from flows.privacy import erase_customers, export_customer
from maestra.api.models import ApiKey
from maestra.audit.models import AuditEntry

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SECRETS = ("erinna.q@example.com", "+49 151 7777777", "491517777777", "Erinna", "Quocksworth")


@pytest.fixture
def seed(templates, spec_document, settings):
    """The SPEC flow live; Erinna registered, confirmed, with an event whose
    payload repeats her data and a refused message quoting her address."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    templates[
        "confirm"
    ].text = "Hello {{ customer.first_name }} {{ customer.last_name }} <{{ customer.email }}>"
    templates["confirm"].save()
    flow = lifecycle.create_flow(document=spec_document)
    lifecycle.launch_flow(flow=flow, enqueue=False)
    lifecycle.finish_launch(flow_id=flow.pk)
    with time_machine.travel(START, tick=False):
        upsert_customers(
            rows=[
                {
                    "external_id": "erin",
                    "email": SECRETS[0],
                    "phone": SECRETS[1],
                    "first_name": "Erinna",
                    "last_name": "Quocksworth",
                    "timezone": "Europe/Berlin",
                    "fields": {"nickname": "Erinna Q", "mail2": SECRETS[0]},
                    "subscriptions": {"email": "requires_confirmation", "sms": "subscribed"},
                },
                {
                    "external_id": "bob",
                    "email": "bob@example.com",
                    "first_name": "Bob",
                    "subscriptions": {"email": "requires_confirmation"},
                },
            ]
        )
        erin = Customer.objects.get(external_id="erin")
        store_events(
            events=[
                {
                    "external_id": "evt-1",
                    "customer_id": erin.pk,
                    "type": "order_created",
                    "occurred_at": START,
                    "payload": {"billing": {"name": "Erinna Quocksworth", "email": SECRETS[0]}},
                }
            ]
        )
        tick()
    Message.objects.create(
        customer=erin,
        template_slug="confirm",
        channel="email",
        status=Message.Status.FAILED,
        reason=f"smtp_recipient_refused: 550 <{SECRETS[0]}> mailbox full",
        response_body=f"550 {SECRETS[0]}",
    )
    return flow, erin


def text_columns():
    for model in apps.get_models():
        fields = [
            f.attname
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField | models.JSONField)
        ]
        if fields:
            yield model, fields


def where_found(secret: str) -> list[str]:
    """Every model.column whose value (as text) contains `secret`."""
    found = []
    for model, fields in text_columns():
        for row in model._default_manager.values_list(*fields):
            for name, value in zip(fields, row, strict=True):
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                if secret.lower() in (text or "").lower():
                    found.append(f"{model._meta.label}.{name}")
    return sorted(set(found))


@pytest.mark.django_db
def test_after_erase_the_person_appears_in_no_table(seed, django_user_model):
    flow, erin = seed
    admin_user = django_user_model.objects.create_superuser("root", "root@shop.example", "pw")
    LogEntry.objects.create(
        content_type=ContentType.objects.get_for_model(Customer),
        object_id=str(erin.pk),
        object_repr=f"erin <{SECRETS[0]}>",
        action_flag=CHANGE,
        change_message=f"changed the name to {SECRETS[3]}",
        user=admin_user,
    )
    # The scenario really did spread her data around.
    assert "channels.Message.rendered" in where_found(SECRETS[0])
    assert "customers.Event.payload" in where_found("Quocksworth")
    assert NodePass.objects.filter(run__customer=erin).exists()
    stats_before = list(NodeStat.objects.order_by("id").values_list("id", "count"))
    assert stats_before
    bob_messages = Message.objects.filter(customer__external_id="bob").count()

    assert erase_customers(customer_ids=[erin.pk, 999_999], user=admin_user) == 1

    for secret in SECRETS:
        assert where_found(secret) == [], secret
    erin.refresh_from_db()
    assert erin.external_id == f"erased-{erin.pk}"
    assert not Subscription.objects.filter(customer=erin).exists()
    assert not NodePass.objects.filter(run__customer=erin).exists()
    # Her run waiting for the reminder is stopped, not left to send.
    runs = list(Run.objects.filter(customer=erin).values_list("status", "stop_reason"))
    assert ("stopped", "erased") in runs
    assert not Run.objects.filter(customer=erin, status__in=["active", "waiting"]).exists()
    assert Message.objects.get(customer=erin, status="failed").reason == "smtp_recipient_refused"
    # Statistics, other customers and the audit trail.
    assert list(NodeStat.objects.order_by("id").values_list("id", "count")) == stats_before
    assert Message.objects.filter(customer__external_id="bob").count() == bob_messages
    assert Customer.objects.get(external_id="bob").email == "bob@example.com"
    entry = AuditEntry.objects.get(action="customer.erased")
    assert entry.data == {"customer_id": erin.pk} and entry.user == admin_user

    # Nothing more is sent to her when the reminder would have been due.
    with time_machine.travel(START + timedelta(days=2), tick=False):
        tick()
    assert Message.objects.filter(customer=erin, template_slug="reminder").count() == 0


@pytest.mark.django_db
def test_export_has_everything_and_is_json(seed):
    _flow, erin = seed
    data = export_customer(customer=erin)
    json.dumps(data)  # JSON-ready
    assert data["profile"]["email"] == SECRETS[0]
    assert data["profile"]["fields"]["nickname"] == "Erinna Q"
    assert data["subscriptions"]["sms"]["status"] == "subscribed"
    assert [e["type"] for e in data["events"]].count("order_created") == 1
    assert any("Erinna" in (m["content"].get("text") or "") for m in data["messages"])
    assert any([n["key"] for n in run["nodes"]][:2] == ["start", "ask"] for run in data["runs"])


def api_client():
    cache.clear()
    _record, key = ApiKey.objects.create_key(name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.mark.django_db
def test_the_api_exports_and_erases(seed):
    _flow, erin = seed
    api = api_client()
    response = api.get("/api/v1/customers/erin/export")
    assert response.status_code == 200
    assert response.json()["profile"]["last_name"] == "Quocksworth"
    assert api.get("/api/v1/customers/nobody/export").status_code == 404
    assert api.post("/api/v1/customers/nobody/erase").json()["errors"][0]["message"]

    response = api.post("/api/v1/customers/erin/erase")
    assert response.status_code == 200
    assert response.json() == {"erased": True, "external_id": f"erased-{erin.pk}"}
    assert api.get("/api/v1/customers/erin").status_code == 404
    assert where_found("Quocksworth") == []
    assert APIClient().post(f"/api/v1/customers/erased-{erin.pk}/erase").status_code in (401, 403)


@pytest.mark.django_db
def test_the_commands_export_and_erase(seed):
    _flow, erin = seed
    out = StringIO()
    call_command("export_customer", "erin", stdout=out)
    assert json.loads(out.getvalue())["profile"]["first_name"] == "Erinna"
    out = StringIO()
    call_command("erase_customer", "erin", stdout=out)
    assert f"erased-{erin.pk}" in out.getvalue()
    assert where_found(SECRETS[0]) == []
    with pytest.raises(CommandError, match="No customer"):
        call_command("erase_customer", "erin")
    with pytest.raises(CommandError, match="No customer"):
        call_command("export_customer", "nobody")


@pytest.mark.django_db
def test_the_admin_actions_confirm_then_erase_and_export(seed, admin_client):
    _flow, erin = seed
    url = "/admin/customers/customer/"
    response = admin_client.post(url, {"action": "export_selected_customers", "_selected_action": [erin.pk]})
    assert response.status_code == 200
    assert json.loads(response.content)[0]["profile"]["email"] == SECRETS[0]

    # First a confirmation page; nothing erased yet.
    response = admin_client.post(url, {"action": "erase_selected_customers", "_selected_action": [erin.pk]})
    assert response.status_code == 200 and b"cannot be undone" in response.content
    assert Customer.objects.get(pk=erin.pk).email == SECRETS[0]
    response = admin_client.post(
        url, {"action": "erase_selected_customers", "_selected_action": [erin.pk], "confirm_erase": "yes"}
    )
    assert response.status_code == 302
    assert Customer.objects.get(pk=erin.pk).email == ""
    assert where_found("Erinna") == []
