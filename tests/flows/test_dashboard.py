"""The marketer's home (issue #14, item 8): the dashboard's figures per flow
and day (entered, sent, goal conversions) in a fixed number of queries, the
flow list's 7-day columns in the list's own query, and the engine's
internal tables kept out of the Marketer's menu."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.text import capfirst

from channels.models import Message
from customers.models import Customer, Event
from flows.admin.dashboard import dashboard, sparkline
from flows.models import Flow, Run
from tests import helpers
from tests.flows.admin_kit import message_to, run_in

S = Flow.Status
NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


def activity(flow: Flow, *, customers: int, day_offset: int, sent: int = 0, converted: int = 0, test=False):
    at = NOW - timedelta(days=day_offset, hours=1)
    for n in range(customers):
        customer, _ = Customer.objects.get_or_create(external_id=f"{flow.pk}-{day_offset}-{n}")
        run_in(
            flow, customer, status=Run.Status.ACTIVE, node_key="ask", clock=at, entered_at=at, is_test=test
        )
        if n < sent:
            message_to(customer, flow=flow, status=Message.Status.SENT, created_at=at, is_test=test)
        if n < converted:
            Event.objects.create(
                customer=customer, type="order_created", occurred_at=at + timedelta(minutes=30)
            )


@pytest.fixture
def two_flows(flow_in):
    first = flow_in(S.ACTIVE, with_draft=False)
    second = flow_in(S.PAUSED, with_draft=False)
    flow_in(S.READY)
    activity(first, customers=3, day_offset=0, sent=2, converted=1)
    activity(first, customers=2, day_offset=3, sent=2)
    activity(first, customers=4, day_offset=9, sent=4, converted=4)  # before the 7 days
    activity(first, customers=5, day_offset=1, sent=5, converted=5, test=True)  # test runs do not count
    activity(second, customers=1, day_offset=6, sent=1, converted=1)
    return first, second


@pytest.mark.django_db
def test_the_dashboard_counts_the_last_7_days_per_flow_and_day(two_flows):
    first, second = two_flows
    with time_machine.travel(NOW, tick=False):
        data = dashboard()
    assert [
        item["count"] for item in data["by_status"] if item["status"] in ("active", "paused", "ready")
    ] == [
        1,
        1,
        1,
    ]
    rows = {row["id"]: row for row in data["flows"]}
    assert rows[first.pk]["entered"]["series"] == [0, 0, 0, 2, 0, 0, 3]
    assert rows[first.pk]["sent"]["total"] == 4
    assert rows[first.pk]["conversions"]["series"] == [0, 0, 0, 0, 0, 0, 1]
    assert rows[second.pk]["entered"]["series"] == [1, 0, 0, 0, 0, 0, 0]
    assert rows[second.pk]["conversions"]["total"] == 1


@pytest.mark.django_db
def test_the_dashboard_takes_the_same_queries_for_many_flows(admin_client, flow_in):
    flow = flow_in(S.ACTIVE, with_draft=False)
    activity(flow, customers=1, day_offset=0, sent=1, converted=1)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(reverse("admin:flows_dashboard"))
        assert response.status_code == 200
        return len(queries)

    few = count()
    for _n in range(4):
        activity(flow_in(S.ACTIVE, with_draft=False), customers=2, day_offset=1, sent=1, converted=1)
    assert count() == few
    page = admin_client.get(reverse("admin:flows_dashboard")).content.decode()
    assert page.count("<polyline") == 3 * 5  # three sparklines per flow


@pytest.mark.django_db
def test_the_flow_list_shows_7_day_figures_in_its_own_query(admin_client, two_flows, flow_in):
    first, _second = two_flows
    url = reverse("admin:flows_flow_changelist")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(url)
        assert response.status_code == 200
        return len(queries)

    few = count()
    for _n in range(3):
        activity(flow_in(S.ACTIVE, with_draft=False), customers=1, day_offset=0, sent=1)
    assert count() == few
    with time_machine.travel(NOW, tick=False):
        response = admin_client.get(url + "?o=5")  # ordered by "entered (7 days)"
    page = response.content.decode()
    assert "Entered (7 days)" in page and "Sent (7 days)" in page
    flows = {flow.pk: flow for flow in response.context["cl"].result_list}
    assert (flows[first.pk].entered_7d, flows[first.pk].sent_7d) == (5, 4)


def test_a_sparkline_scales_to_its_largest_value():
    line = sparkline([0, 5, 10])
    assert line["points"] == "0.0,20.0 42.0,11.0 84.0,2.0"
    assert sparkline([0, 0])["max"] == 0


# The engine's own tables, by the names the admin index gives them ("Ab assignments", …).
ENGINE_TABLES = [
    "ABAssignment",
    "Edge",
    "LaunchRecord",
    "LimitationCounter",
    "LimitationGrant",
    "NodePass",
    "NodeStat",
]
INTERNAL = [capfirst(apps.get_model("flows", name)._meta.verbose_name_plural) for name in ENGINE_TABLES]


@pytest.mark.django_db
def test_the_marketer_menu_hides_the_internal_tables(django_user_model):
    marketer = django_user_model.objects.create_user("mia", is_staff=True)
    marketer.groups.add(helpers.marketer_group())
    client = Client()
    client.force_login(marketer)
    page = client.get(reverse("admin:index")).content.decode()
    for name in INTERNAL:
        assert f">{name}<" not in page, name
    for name in ("Flows", "Runs", "Templates"):
        assert f">{name}<" in page
    assert reverse("admin:flows_dashboard") in page
    assert client.get(reverse("admin:flows_dashboard")).status_code == 200
    # Still there for those who run the engine.
    root = Client()
    root.force_login(django_user_model.objects.create_superuser("root", password=None))
    page = root.get(reverse("admin:index")).content.decode()
    for name in INTERNAL:
        assert f">{name}<" in page, name


@pytest.mark.django_db
def test_a_flow_with_a_goal_counts_its_goal_on_the_dashboard(flow_in):
    """SPEC §13: the goal's event type and filter instead of the site-wide types."""
    import json

    site = flow_in(S.ACTIVE, with_draft=False)
    goal_flow = flow_in(S.ACTIVE, with_draft=False)
    version = goal_flow.live_version
    document = json.loads(version.document_json)
    document["goal"] = {"event_type": "purchase", "filter": {"field": "event.total", "op": "gt", "value": 5}}
    type(version).objects.filter(pk=version.pk).update(document_json=json.dumps(document))
    activity(site, customers=2, day_offset=1, converted=2)  # order_created: counts for the site flow
    activity(goal_flow, customers=3, day_offset=1, converted=3)  # order_created: not this flow's goal
    at = NOW - timedelta(days=1)
    for n, total in enumerate((10, 1)):
        customer = Customer.objects.get(external_id=f"{goal_flow.pk}-1-{n}")
        Event.objects.create(customer=customer, type="purchase", occurred_at=at, payload={"total": total})
    with time_machine.travel(NOW, tick=False):
        rows = {row["id"]: row for row in dashboard()["flows"]}
    assert rows[site.pk]["conversions"]["total"] == 2
    assert rows[goal_flow.pk]["conversions"]["total"] == 1
