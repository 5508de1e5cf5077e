"""GET /api/v1/flows/{id}/stats, read from the hourly node counters."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from customers.models import Customer
from flows.models import NodeStat
from tests.flows import admin_kit as kit

NOW = datetime(2025, 6, 10, 12, 30, tzinfo=UTC)


def _stat(flow, key, metric, count, *, hours_ago=1, is_test=False):
    hour = NOW.replace(minute=0) - timedelta(hours=hours_ago)
    NodeStat.objects.create(flow=flow, node_key=key, hour=hour, metric=metric, count=count, is_test=is_test)


@pytest.fixture
def counted_flow(flow_in):
    flow = flow_in("active", with_draft=False)
    _stat(flow, "start", "entered", 10)
    _stat(flow, "start", "entered", 10, hours_ago=2)
    _stat(flow, "start", "exit:next", 18)
    _stat(flow, "start", "stop:launch_limit", 2)
    _stat(flow, "ask", "entered", 18)
    _stat(flow, "ask", "stop:relevance_expired", 3)
    _stat(flow, "ask", "exit:next", 15)
    _stat(flow, "still", "exit:yes", 4)
    _stat(flow, "still", "exit:no", 6)
    _stat(flow, "gone", "entered", 1)  # a node of an older version
    _stat(flow, "start", "entered", 100, hours_ago=24 * 30)  # outside the default period
    _stat(flow, "start", "entered", 7, is_test=True)
    customer = Customer.objects.create(external_id="c")
    for _ in range(2):
        kit.run_in(flow, customer, version_id=flow.live_version_id, clock=NOW)
    for status in ("sent", "sent", "failed"):
        kit.message_to(
            customer, flow=flow, status=status, node_key="ask", created_at=NOW - timedelta(hours=1)
        )
    return flow


@pytest.mark.django_db
def test_it_reports_each_node_with_percentages_of_the_start(api, counted_flow):
    with time_machine.travel(NOW, tick=False):
        body = api.get(f"/api/v1/flows/{counted_flow.pk}/stats").json()
    assert (body["start_node"], body["start_entered"], body["test"]) == ("start", 20, False)
    nodes = {node["key"]: node for node in body["nodes"]}
    assert [node["key"] for node in body["nodes"]] == ["start", "ask", "day", "still", "remind", "gone"]
    assert nodes["start"]["stops"] == [{"reason": "launch_limit", "count": 2, "percent": 10.0}]
    assert (nodes["ask"]["entered"], nodes["ask"]["entered_percent"]) == (18, 90.0)
    assert nodes["ask"]["messages"] == {"failed": 1, "sent": 2}
    assert nodes["day"]["waiting_now"] == 2
    assert nodes["still"]["exits"] == [
        {"port": "no", "count": 6, "percent": 30.0},
        {"port": "yes", "count": 4, "percent": 20.0},
    ]
    assert (nodes["gone"]["kind"], nodes["gone"]["entered"]) == (None, 1)
    assert nodes["remind"] == {
        **nodes["remind"],
        "entered": 0,
        "entered_percent": 0.0,
        "exits": [],
        "waiting_now": 0,
    }


@pytest.mark.django_db
def test_it_reports_a_chosen_period_and_test_runs_apart(api, counted_flow):
    url = f"/api/v1/flows/{counted_flow.pk}/stats"
    with time_machine.travel(NOW, tick=False):
        last_hour = api.get(url, {"start": (NOW - timedelta(minutes=90)).isoformat()}).json()
        assert last_hour["start_entered"] == 10
        month = api.get(url, {"start": (NOW - timedelta(days=40)).isoformat(), "end": NOW.isoformat()}).json()
        assert month["start_entered"] == 120
        test = api.get(url, {"test": "true"}).json()
        assert (test["start_entered"], test["nodes"][1]["messages"]) == (7, {})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"start": "yesterday"},
        {"start": "2025-06-10T00:00:00Z", "end": "2025-06-01T00:00:00Z"},
        {"test": "maybe"},
        {"from": "2025-01-01"},
        # The default start (7 days before) lies before year 1: was a 500.
        {"end": "0001-01-01T00:00:00Z"},
    ],
)
def test_it_refuses_bad_stats_parameters(api, counted_flow, query):
    response = api.get(f"/api/v1/flows/{counted_flow.pk}/stats", query)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] in query


@pytest.mark.django_db
def test_it_reports_a_flow_without_any_run(api, flow_in):
    flow = flow_in("ready")
    body = api.get(f"/api/v1/flows/{flow.pk}/stats").json()
    assert body["start_entered"] == 0
    assert all(node["entered_percent"] is None for node in body["nodes"])


@pytest.mark.django_db
def test_it_computes_stats_in_a_constant_number_of_queries(api, counted_flow, django_assert_max_num_queries):
    for n in range(50):
        _stat(counted_flow, f"n{n}", "entered", 1)
    with django_assert_max_num_queries(9):
        assert api.get(f"/api/v1/flows/{counted_flow.pk}/stats").status_code == 200
