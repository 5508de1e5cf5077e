"""The kernel's audit log (maestra/audit): one table every app writes, its
registry of actions, and its read-only admin with filters."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.urls import reverse

from customers.models import Customer, PromoPool
from flows import lifecycle
from flows.models import Flow
from maestra.api import keys
from maestra.api.models import ApiKey
from maestra.audit import log as audit
from maestra.audit.actions import registered_actions
from maestra.audit.models import AuditEntry

CHANGELIST = "admin:audit_auditentry_changelist"


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", password=None)


def listed(response) -> list[AuditEntry]:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.mark.django_db
def test_it_writes_an_entry_about_a_subject(admin_user):
    customer = Customer.objects.create(external_id="c1", email="ann@example.com")

    entry = audit.log("customer.erased", user=admin_user, subject=customer, data={"customer_id": customer.pk})

    entry.refresh_from_db()
    assert entry.subject == customer and entry.user == admin_user
    # Never personal data in the description of the subject.
    assert entry.subject_repr == f"customer #{customer.pk}" and "ann" not in entry.subject_repr


@pytest.mark.django_db
def test_it_refuses_an_action_no_app_registered():
    with pytest.raises(ValueError, match="Unknown audit action 'flow.exploded'"):
        audit.log("flow.exploded")
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_an_anonymous_user_is_left_empty_and_an_actor_names_who_acted():
    entry = audit.log("alert.limitation_low", user=AnonymousUser(), actor="system")
    assert entry.user is None and entry.actor == "system" and entry.subject is None


@pytest.mark.django_db
def test_it_writes_many_entries_in_one_statement(django_assert_num_queries):
    customers = [Customer.objects.create(external_id=f"c{i}") for i in range(3)]
    ContentType.objects.get_for_model(Customer)  # cached once per process, as in production
    with django_assert_num_queries(1):
        audit.log_many(audit.entry("customer.erased", subject=customer) for customer in customers)
    assert sorted(AuditEntry.objects.values_list("subject_id", flat=True)) == [c.pk for c in customers]


def test_every_app_registers_its_actions():
    assert {"flow.launched", "customer.erased", "alert.promo_pool_low"} <= registered_actions()
    assert {"api_key.created", "api_key.revoked"} <= registered_actions()


@pytest.mark.django_db
def test_a_flows_history_is_found_through_the_flow(flow_in):
    flow = flow_in(Flow.Status.ACTIVE, with_draft=False)
    other = flow_in(Flow.Status.READY)

    assert list(flow.audit_entries.order_by("pk").values_list("action", flat=True)) == [
        "flow.created",
        "flow.launch_requested",
        "flow.launched",
    ]
    assert AuditEntry.objects.about(other).count() == 1


@pytest.mark.django_db
def test_the_admin_filters_by_action_subject_type_user_and_date(client, admin_user, flow_in):
    client.force_login(admin_user)
    flow = flow_in(Flow.Status.READY)
    lifecycle.rename_flow(flow=flow, name="Renamed", description="", user=admin_user)
    pool = PromoPool.objects.create(slug="welcome", name="Welcome")
    audit.log("alert.promo_pool_low", subject=pool, data={"pool": "welcome"})
    url = reverse(CHANGELIST)

    assert [e.action for e in listed(client.get(url, {"action": "flow.renamed"}))] == ["flow.renamed"]
    pool_type = ContentType.objects.get_for_model(PromoPool).pk
    assert [e.subject for e in listed(client.get(url, {"subject_type__id__exact": pool_type}))] == [pool]
    by_admin = listed(client.get(url, {"user__id__exact": admin_user.pk}))
    assert "flow.renamed" in {e.action for e in by_admin} and {e.user for e in by_admin} == {admin_user}
    assert (
        len(
            listed(
                client.get(
                    url, {"at__gte": "2000-01-01 00:00:00+00:00", "at__lt": "2000-01-02 00:00:00+00:00"}
                )
            )
        )
        == 0
    )

    page = client.get(url).content.decode()
    assert 'href="?action=flow.launched"' in page
    # The subject links to its own admin page.
    assert reverse("admin:customers_promopool_change", args=[pool.pk]) in page
    assert reverse("admin:flows_flow_change", args=[flow.pk]) in page


@pytest.mark.django_db
def test_the_flow_page_links_to_the_flows_audit_log(client, admin_user, flow_in):
    client.force_login(admin_user)
    flow = flow_in(Flow.Status.READY)
    flow_in(Flow.Status.READY)  # another flow's entries stay out

    page = client.get(reverse("admin:flows_flow_change", args=[flow.pk])).content.decode()
    flow_type = ContentType.objects.get_for_model(Flow).pk
    link = f"{reverse(CHANGELIST)}?subject_type={flow_type}&amp;subject_id={flow.pk}"
    assert link in page

    entries = listed(client.get(reverse(CHANGELIST), {"subject_type": flow_type, "subject_id": flow.pk}))
    assert [e.action for e in entries] == ["flow.created"] and entries[0].subject == flow


@pytest.mark.django_db
def test_the_log_is_read_only_in_the_admin(client, admin_user):
    client.force_login(admin_user)
    entry = audit.log("flow.paused")
    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    assert client.get(reverse("admin:audit_auditentry_delete", args=[entry.pk])).status_code == 403
    change = client.get(reverse("admin:audit_auditentry_change", args=[entry.pk]))
    assert change.status_code == 200 and change.context["has_change_permission"] is False


@pytest.mark.django_db
def test_creating_a_key_with_the_command_is_logged_without_the_key(capsys):
    call_command("create_api_key", "shop", "--scopes", "events:write")
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    key = ApiKey.objects.get()

    entry = AuditEntry.objects.get(action="api_key.created")
    assert entry.actor == "command" and entry.user is None
    assert entry.subject_repr == f"shop ({key.prefix})"
    assert entry.data == {"prefix": key.prefix, "name": "shop", "scopes": ["events:write"]}
    assert secret not in str(entry.data) and key.hashed_key not in str(entry.data)


@pytest.mark.django_db
def test_creating_and_revoking_a_key_in_the_admin_is_logged_once(client, admin_user):
    client.force_login(admin_user)
    assert client.post("/admin/api/apikey/add/", {"name": "crm", "scopes": ["flows:read"]}).status_code == 302
    key = ApiKey.objects.get()
    change = f"/admin/api/apikey/{key.pk}/change/"
    assert client.post(change, {"name": "crm", "scopes": ["privacy"]}).status_code == 302
    assert client.post(change, {"name": "crm", "scopes": ["privacy"], "revoked": "on"}).status_code == 302
    key.refresh_from_db()
    assert key.revoked

    entries = list(AuditEntry.objects.order_by("pk"))
    assert [(e.action, e.user) for e in entries] == [
        ("api_key.created", admin_user),
        ("api_key.revoked", admin_user),
    ]
    assert entries[1].data["scopes"] == ["privacy"]


@pytest.mark.django_db
def test_revoke_key_is_logged_once():
    api_key = ApiKey(name="old", scopes=["privacy"])
    keys.create_key(api_key=api_key)
    keys.revoke_key(api_key=api_key, actor="system")
    keys.revoke_key(api_key=api_key, actor="system")  # already revoked: nothing more to say
    assert list(AuditEntry.objects.order_by("pk").values_list("action", "actor")) == [
        ("api_key.created", ""),
        ("api_key.revoked", "system"),
    ]
