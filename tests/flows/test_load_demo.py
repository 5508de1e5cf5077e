"""load_demo: the SPEC §11 flow live with its templates, customers, segment,
promo pool and an admin login; a second run creates and changes nothing."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from channels.models import Template
from customers.models import Customer, Event, PromoCode, PromoPool, Segment, SegmentMembership, Subscription
from flows.management.commands.load_demo import DEMO_DOCUMENT
from flows.models import Flow, FlowVersion
from maestra.audit.models import AuditEntry

SPEC_EXAMPLE = Path(__file__).parent / "fixtures" / "spec_example.json"


def load_demo(*args: str) -> str:
    out = StringIO()
    call_command("load_demo", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict:
    """Every row the demo touches, by table."""
    return {
        "users": list(get_user_model().objects.values_list("pk", "username", "password", "is_superuser")),
        "templates": list(Template.objects.values_list("pk", "slug", "subject", "updated_at")),
        "flows": list(Flow.objects.values_list("pk", "name", "status", "live_version_id", "updated_at")),
        "versions": list(FlowVersion.objects.values_list("pk", "number", "state", "document_json")),
        "customers": list(Customer.objects.values_list("pk", "external_id", "email", "updated_at")),
        "subscriptions": list(Subscription.objects.values_list("pk", "channel", "status", "updated_at")),
        "segments": list(Segment.objects.values_list("pk", "slug", "kind")),
        "members": list(SegmentMembership.objects.values_list("segment_id", "customer_id")),
        "pools": list(PromoPool.objects.values_list("pk", "slug")),
        "codes": list(PromoCode.objects.values_list("pk", "code")),
        "events": list(Event.objects.values_list("pk", "type")),
        "audit": list(AuditEntry.objects.values_list("pk", "action")),
    }


@pytest.mark.django_db
def test_it_loads_the_demo(spec_document):
    output = load_demo()

    admin = get_user_model().objects.get()
    assert admin.is_superuser and admin.username == "admin"
    assert authenticate(username="admin", password="admin") == admin
    assert "created 'admin' with password 'admin'" in output

    templates = {t.slug: t for t in Template.objects.all()}
    assert set(templates) == {"confirm", "reminder"}
    assert templates["confirm"].subject == "Please confirm your subscription"
    assert {(t.channel, t.purpose) for t in templates.values()} == {("email", "service")}

    flow = Flow.objects.get()
    assert flow.name == "Subscription confirmation"
    assert flow.status == Flow.Status.ACTIVE
    assert flow.owner == admin
    assert flow.live_version.number == 1
    assert flow.live_version.launched_by == admin
    assert flow.live_version.document == spec_document
    assert flow.live_version.errors == []

    statuses = dict(Subscription.objects.values_list("customer__external_id", "status"))
    assert len(statuses) == 5
    assert sorted(set(statuses.values())) == ["requires_confirmation", "subscribed"]
    assert list(statuses.values()).count("requires_confirmation") == 2
    assert Customer.objects.exclude(email="").count() == 5
    # Created through the service: the product's own events are there for the engine.
    assert Event.objects.filter(type="customer_created").count() == 5
    assert Event.objects.filter(type="subscription_changed").count() == 5

    segment = Segment.objects.get()
    assert (segment.slug, segment.kind) == ("newsletter", "static")
    assert segment.memberships.count() == 5
    pool = PromoPool.objects.get()
    assert pool.slug == "welcome"
    assert pool.codes.filter(issued_at__isnull=True).count() == 20

    assert "http://127.0.0.1:8000/admin/" in output
    assert f"/admin/flows/flow/{flow.pk}/change/" in output


@pytest.mark.django_db
def test_running_it_twice_changes_nothing():
    load_demo()
    before = snapshot()

    output = load_demo()

    assert snapshot() == before
    assert "already exists" in output
    assert "0 created" in output


@pytest.mark.django_db
def test_it_leaves_a_customer_who_confirmed_alone():
    load_demo()
    Subscription.objects.filter(status="requires_confirmation").update(status="subscribed")

    load_demo()

    assert not Subscription.objects.filter(status="requires_confirmation").exists()


@pytest.mark.django_db
def test_it_takes_the_superuser_credentials_from_the_options():
    output = load_demo("--username", "boss", "--password", "s3cret-pass")

    assert authenticate(username="boss", password="s3cret-pass") is not None
    assert "'boss'" in output and "'s3cret-pass'" in output


@pytest.mark.django_db
def test_it_creates_no_superuser_when_one_exists(django_user_model):
    owner = django_user_model.objects.create_superuser("root", "root@example.com", password=None)

    output = load_demo()

    assert list(django_user_model.objects.values_list("username", flat=True)) == ["root"]
    assert "'root' already exists" in output
    assert Flow.objects.get().owner == owner


@pytest.mark.django_db
def test_it_refuses_a_username_taken_by_a_plain_user(django_user_model):
    django_user_model.objects.create_user("admin", password=None)

    with pytest.raises(CommandError, match="exists but is not a superuser"):
        load_demo()
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_a_failure_half_way_leaves_nothing_behind(django_user_model):
    # A rule-based "newsletter" segment cannot take members.
    Segment.objects.create(
        slug="newsletter", name="N", kind="rule", rule={"field": "points", "op": "gt", "value": 1}
    )

    with pytest.raises(CommandError, match="rule-based"):
        load_demo()

    assert not Flow.objects.exists()
    assert not Customer.objects.exists()
    assert not django_user_model.objects.exists()
    assert not Template.objects.exists()


@pytest.mark.django_db
def test_it_finishes_a_demo_flow_left_ready(templates, spec_document):
    from flows import lifecycle

    flow = lifecycle.create_flow(document=spec_document)

    output = load_demo()

    assert Flow.objects.get().pk == flow.pk
    assert Flow.objects.get().status == Flow.Status.ACTIVE
    assert f"(id {flow.pk}): launched as version 1" in output


@pytest.mark.django_db
def test_it_reports_why_the_demo_flow_cannot_launch(spec_document):
    # A "confirm" template on another channel makes the flow's send step invalid.
    Template.objects.create(slug="confirm", name="Confirm", channel="sms", text="Confirm")

    with pytest.raises(CommandError, match="cannot be launched") as refused:
        load_demo()

    assert "ask" in str(refused.value)
    assert not Flow.objects.exists()


def test_the_demo_document_is_the_spec_example():
    assert json.loads(DEMO_DOCUMENT.read_text(encoding="utf-8")) == json.loads(
        SPEC_EXAMPLE.read_text(encoding="utf-8")
    )


@pytest.mark.django_db
def test_the_demo_flow_page_renders_in_the_admin(client):
    load_demo()
    client.login(username="admin", password="admin")

    response = client.get(reverse("admin:flows_flow_change", args=[Flow.objects.get().pk]))

    assert response.status_code == 200
    assert "Active · live v1" in response.content.decode()
