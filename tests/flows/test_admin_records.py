"""The admin pages of what the engine records (versions, runs, node passes,
launch records, counters, A/B assignments, stats, the audit log): they render,
they are read-only, and a list page costs the same queries for 1 row as for 20."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from customers.models import Customer
from flows import lifecycle, models
from flows.models import Edge, Flow, FlowVersion, Node, NodePass, Run
from maestra.audit.models import AuditEntry
from tests.flows import admin_kit as kit

MOMENT = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
# The engine's tables (flows.models) and the audit log, as the admin shows them.
RECORD_MODELS = [
    FlowVersion,
    Node,
    Edge,
    Run,
    NodePass,
    models.LaunchRecord,
    models.LimitationCounter,
    models.LimitationGrant,
    models.ABAssignment,
    models.NodeStat,
    AuditEntry,
]


def add_records(flow: Flow, count: int, *, start: int = 0) -> None:
    """`count` rows of every engine table for `flow` (one customer and one run each)."""
    for index in range(start, start + count):
        customer = Customer.objects.create(external_id=f"c{index}", email=f"c{index}@example.com")
        run = kit.run_in(flow, customer, clock=MOMENT)
        kit.pass_through(run, "start", "event", 1, port="next")
        models.LaunchRecord.objects.create(flow=flow, customer=customer, launches=1, last_step_at=MOMENT)
        counter = models.LimitationCounter.objects.create(
            flow=flow, node_key="cap", signature="all", window_start=MOMENT + timedelta(hours=index), used=1
        )
        models.LimitationGrant.objects.create(counter=counter, run=run, pass_no=2)
        models.ABAssignment.objects.create(flow=flow, node_key="ab", customer=customer, variant="A")
        models.NodeStat.objects.create(
            flow=flow, node_key="start", hour=MOMENT, metric=f"entered{index}", count=3
        )
        AuditEntry.objects.create(action="flow.paused", subject=flow)


@pytest.fixture
def live_flow(flow_in) -> Flow:
    return flow_in(Flow.Status.ACTIVE, with_draft=False)


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.mark.django_db
@pytest.mark.parametrize("model", RECORD_MODELS, ids=lambda m: m.__name__)
def test_every_record_page_renders_and_is_read_only(admin_client, live_flow, model):
    add_records(live_flow, 3)
    obj = model.objects.order_by("pk").first()

    listing = admin_client.get(changelist(model))
    detail = admin_client.get(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
    )

    assert listing.status_code == 200
    assert len(listing.context["cl"].result_list) >= 1
    assert detail.status_code == 200
    assert detail.context["has_change_permission"] is False
    page = detail.content.decode()
    assert 'name="_save"' not in page
    assert (
        admin_client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")).status_code
        == 403
    )
    assert (
        admin_client.get(
            reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_delete", args=[obj.pk])
        ).status_code
        == 403
    )


@pytest.mark.django_db
@pytest.mark.parametrize("model", RECORD_MODELS, ids=lambda m: m.__name__)
def test_a_record_list_runs_the_same_queries_for_1_and_20_rows(
    admin_client, live_flow, model, django_assert_max_num_queries
):
    if model not in (FlowVersion, Node, Edge, AuditEntry):
        add_records(live_flow, 1)
    before = model.objects.count()
    assert before >= 1
    url = changelist(model)
    with django_assert_max_num_queries(10) as few:
        assert admin_client.get(url).status_code == 200

    # Versions, nodes and edges come with flows; the rest with customers' runs.
    if model in (FlowVersion, Node, Edge):
        while model.objects.count() < before + 19:
            lifecycle.duplicate_flow(flow=live_flow)
    else:
        add_records(live_flow, 19, start=1)
    assert model.objects.count() >= before + 19
    with django_assert_max_num_queries(10) as many:
        assert admin_client.get(url).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.django_db
def test_a_run_page_lists_the_nodes_it_passed(admin_client, live_flow):
    add_records(live_flow, 1)
    run = Run.objects.get()

    page = admin_client.get(reverse("admin:flows_run_change", args=[run.pk])).content.decode()

    assert "start" in page
    assert "next" in page


@pytest.mark.django_db
def test_a_version_page_links_to_its_read_only_view(admin_client, live_flow):
    version = live_flow.live_version

    page = admin_client.get(reverse("admin:flows_flowversion_change", args=[version.pk])).content.decode()

    assert reverse("admin:flows_flow_version", args=[live_flow.pk, version.number]) in page


@pytest.mark.django_db
def test_runs_are_filtered_by_status_and_found_by_customer(admin_client, live_flow):
    add_records(live_flow, 3)
    Run.objects.filter(customer__external_id="c1").update(status="stopped", stop_reason="flow_stopped")

    stopped = admin_client.get(changelist(Run), {"status__exact": "stopped"})
    found = admin_client.get(changelist(Run), {"q": "c2"})

    assert [run.customer.external_id for run in stopped.context["cl"].result_list] == ["c1"]
    assert [run.customer.external_id for run in found.context["cl"].result_list] == ["c2"]


@pytest.mark.django_db
def test_node_passes_are_filtered_by_the_registered_kinds(admin_client, live_flow):
    add_records(live_flow, 2)
    NodePass.objects.filter(pk=NodePass.objects.order_by("pk").first().pk).update(kind="wait")

    response = admin_client.get(changelist(NodePass), {"kind": "wait"})

    assert [p.kind for p in response.context["cl"].result_list] == ["wait"]
    assert 'href="?kind=limitation"' in response.content.decode()


@pytest.mark.django_db
def test_audit_entries_are_filtered_by_action(admin_client, live_flow):
    response = admin_client.get(changelist(AuditEntry), {"action": "flow.launched"})

    assert [e.action for e in response.context["cl"].result_list] == ["flow.launched"]
    assert 'href="?action=flow.archived"' in response.content.decode()
