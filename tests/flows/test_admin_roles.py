"""Roles: the "Marketer" group (built by the migration
flows/0001_squashed_0010_ab_winner) works with flows, templates, segments and
promo pools, reads customers, statistics and the kernel's audit log, and never
reaches API keys, users, groups or settings; a superuser reaches everything."""

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import Client
from django.urls import reverse

from channels.models import Template
from customers.models import Customer, PromoPool, Segment
from flows.models import Flow
from tests import helpers

S = Flow.Status
migration = importlib.import_module("flows.migrations.0001_squashed_0010_ab_winner")


@pytest.fixture
def marketer_group(db) -> Group:
    # A transactional test elsewhere may have flushed the migrations' rows.
    return helpers.marketer_group()


@pytest.fixture
def marketer(marketer_group, django_user_model):
    user = django_user_model.objects.create_user("mia", is_staff=True)
    user.groups.add(marketer_group)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser(db, django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password=None))
    return client


@pytest.fixture
def things(flow_in):
    flow = flow_in(S.READY)
    customer = Customer.objects.create(external_id="c1", email="c1@example.com", first_name="Cleo")
    return {
        "flow": flow,
        "customer": customer,
        "template": Template.objects.get(slug="confirm"),
        "segment": Segment.objects.create(slug="vip", name="VIP"),
        "pool": PromoPool.objects.create(slug="welcome", name="Welcome"),
    }


MARKETER_PAGES = [
    ("admin:index", None),
    ("admin:flows_flow_changelist", None),
    ("admin:flows_flow_add", None),
    ("admin:flows_flow_change", "flow"),
    ("admin:channels_template_changelist", None),
    ("admin:channels_template_add", None),
    ("admin:channels_template_change", "template"),
    ("admin:channels_template_preview", "template"),
    ("admin:customers_segment_changelist", None),
    ("admin:customers_segment_add", None),
    ("admin:customers_promopool_changelist", None),
    ("admin:customers_promopool_change", "pool"),
    ("admin:customers_customer_changelist", None),
    ("admin:customers_customer_change", "customer"),
    ("admin:flows_nodestat_changelist", None),
    ("admin:flows_run_changelist", None),
    ("admin:channels_message_changelist", None),
    ("admin:flows_monitoring", None),
    ("admin:flows_customer_activity_search", None),
    ("admin:flows_customer_activity", "customer"),
    ("admin:audit_auditentry_changelist", None),
]
FORBIDDEN_TO_MARKETERS = [
    "admin:api_apikey_changelist",
    "admin:api_apikey_add",
    "admin:auth_user_changelist",
    "admin:auth_user_add",
    "admin:auth_group_changelist",
    "admin:django_q_schedule_changelist",
    "admin:customers_customer_add",
]


def url(name: str, things: dict, arg: str | None) -> str:
    return reverse(name, args=[things[arg].pk]) if arg else reverse(name)


@pytest.mark.django_db
def test_the_migration_gives_the_marketer_group_exactly_its_permissions(marketer_group):
    codenames = set(marketer_group.permissions.values_list("content_type__app_label", "codename"))

    assert ("flows", "change_flow") in codenames and ("flows", "add_flow") in codenames
    assert ("channels", "change_template") in codenames
    assert ("customers", "change_segment") in codenames and ("customers", "add_promocode") in codenames
    assert ("customers", "view_customer") in codenames and ("customers", "change_customer") not in codenames
    assert ("flows", "view_nodestat") in codenames and ("channels", "view_message") in codenames
    assert ("flows", "change_run") not in codenames
    # The audit log is the kernel's (maestra/audit), read-only.
    assert ("audit", "view_auditentry") in codenames and ("audit", "change_auditentry") not in codenames
    assert not {app for app, _ in codenames} & {
        "auth",
        "rest_framework_api_key",
        "api",
        "django_q",
        "admin",
        "sessions",
    }
    expected = {
        (app, f"{action}_{model}")
        for app, models in migration.MARKETER_PERMISSIONS.items()
        for model, actions in models.items()
        for action in actions
    }
    assert codenames == expected


@pytest.mark.django_db
def test_the_migration_is_idempotent_and_reversible(marketer_group):
    state_apps = MigrationLoader(connection).project_state(helpers.MARKETER_MIGRATION).apps
    migration.create_marketer_group(state_apps, None)
    migration.create_marketer_group(state_apps, None)
    assert Group.objects.filter(name="Marketer").count() == 1
    assert marketer_group.permissions.count() == sum(
        len(actions) for models in migration.MARKETER_PERMISSIONS.values() for actions in models.values()
    )

    migration.remove_marketer_group(apps, None)
    assert not Group.objects.filter(name="Marketer").exists()
    assert Permission.objects.filter(codename="view_flow").exists()  # permissions stay


@pytest.mark.django_db
@pytest.mark.parametrize("name, arg", MARKETER_PAGES)
def test_a_marketer_and_a_superuser_open_the_marketing_pages(marketer, superuser, things, name, arg):
    assert marketer.get(url(name, things, arg)).status_code == 200
    assert superuser.get(url(name, things, arg)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("name", FORBIDDEN_TO_MARKETERS)
def test_a_marketer_cannot_open_api_keys_users_groups_or_settings(marketer, superuser, name):
    assert marketer.get(reverse(name)).status_code == 403
    assert superuser.get(reverse(name)).status_code == 200


@pytest.mark.django_db
def test_the_marketer_index_lists_the_marketing_tools_and_not_the_admin_models(marketer, superuser):
    page = marketer.get(reverse("admin:index")).content.decode()
    assert "Marketing tools" in page and "Customer activity" in page and "Monitoring" in page
    for hidden in ("API keys", "Users", "Groups", "Scheduled tasks"):
        assert hidden not in page
    assert "API keys" in superuser.get(reverse("admin:index")).content.decode()
    # The audit log, read-only, under its own app.
    assert "Audit entries" in page and reverse("admin:audit_auditentry_changelist") in page


@pytest.mark.django_db
def test_a_marketer_edits_flows_on_the_canvas_but_only_reads_customers(marketer, things, spec_document):
    flow_page = marketer.get(reverse("admin:flows_flow_change", args=[things["flow"].pk]))
    assert flow_page.context["canvas_config"]["editable"] is True
    saved = marketer.post(
        reverse("admin:flows_flow_canvas_save", args=[things["flow"].pk]),
        {"document": spec_document},
        content_type="application/json",
    )
    assert saved.status_code == 200

    customer_url = reverse("admin:customers_customer_change", args=[things["customer"].pk])
    assert marketer.get(customer_url).context["has_change_permission"] is False
    assert marketer.post(customer_url, {"external_id": "changed"}).status_code == 403
    assert Customer.objects.get(pk=things["customer"].pk).external_id == "c1"


@pytest.mark.django_db
def test_a_staff_user_without_a_role_sees_none_of_it(things, django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("plain", is_staff=True))
    for name, arg in MARKETER_PAGES[1:]:
        assert client.get(url(name, things, arg)).status_code == 403, name
