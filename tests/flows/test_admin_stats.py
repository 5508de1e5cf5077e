"""The canvas's extra statistics (flows/selectors/canvas_stats.py): A/B variants with
conversions, revenue and a Wilson interval; limitation places used and left."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from customers.models import Customer, Event
from flows import lifecycle
from flows.models import Flow, LimitationCounter, LimitationGrant, Node, Run
from flows.nodes.limitation import EPOCH
from flows.selectors.canvas_stats import (
    ab_test_stats,
    canvas_stats,
    limitation_usage,
    revenue_of,
    wilson_interval,
)
from tests.flows import admin_kit as kit
from tests.flows.engine_kit import node

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
SINCE = datetime(2025, 6, 1, tzinfo=UTC)
UNTIL = datetime(2025, 6, 11, tzinfo=UTC)

VARIANTS = [
    {"name": "A", "percent": 45},
    {"name": "B", "percent": 45},
    {"name": "control", "percent": 10, "control": True},
]
AB_DOCUMENT = {
    "format": "maestra.flow/1",
    "name": "A/B and cap",
    "nodes": [
        node("start", "event", event_type="visit"),
        node("split", "ab_test", variants=VARIANTS),
        node("cap", "limitation", max=5, period=None),
        node("hourly", "limitation", max=2, period={"unit": "hours", "every": 1}),
    ],
    "edges": [
        {"from": "start", "to": "split"},
        {"from": "split", "port": "A", "to": "cap"},
        {"from": "split", "port": "B", "to": "hourly"},
    ],
}


@pytest.fixture
def live_flow(db) -> Flow:
    flow = lifecycle.create_flow(document=AB_DOCUMENT)
    assert flow.draft.errors == []
    lifecycle.launch_flow(flow=flow, enqueue=False)
    return lifecycle.finish_launch(flow_id=flow.pk)


@pytest.fixture
def customers(db) -> list[Customer]:
    return [Customer.objects.create(external_id=f"c{i}") for i in range(6)]


def passed(flow: Flow, customer: Customer, variant: str, at: datetime, *, is_test: bool = False) -> Run:
    run = kit.run_in(flow, customer, status="completed", node_key="split", clock=at, is_test=is_test)
    kit.pass_through(run, "split", "ab_test", 1, at=at, exited_at=at, port=variant)
    return run


def order(customer: Customer, at: datetime, **payload) -> None:
    Event.objects.create(customer=customer, type="order_created", occurred_at=at, payload=payload)


def ab_nodes(flow: Flow) -> list[dict]:
    return list(Node.objects.filter(version=flow.live_version).values("key", "kind", "config"))


# --- Wilson, revenue -------------------------------------------------------------------


def test_the_wilson_interval_matches_known_values():
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and high == 1.0
    low, high = wilson_interval(50, 1000)
    assert low < 0.05 < high and high - low < 0.03


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"total": 12.5}, "12.5"),
        ({"total": "19.99"}, "19.99"),
        ({"revenue": 7}, "7"),
        ({"total": "n/a", "revenue": 3}, "3"),
        ({"total": True}, "0"),
        ({"total": None}, "0"),
        ({"total": "NaN"}, "0"),
        ({}, "0"),
        ([1, 2], "0"),
        (None, "0"),
    ],
)
def test_revenue_is_read_from_total_or_revenue_and_never_breaks(payload, expected):
    assert str(revenue_of(payload)) == expected


# --- A/B --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ab_stats_count_entries_conversions_and_revenue_per_variant(live_flow, customers):
    day = datetime(2025, 6, 5, 10, tzinfo=UTC)
    a1, a2, b1, b2, ctrl, late = customers
    passed(live_flow, a1, "A", day)
    passed(live_flow, a2, "A", day)
    passed(live_flow, b1, "B", day)
    passed(live_flow, b2, "B", day)
    passed(live_flow, ctrl, "control", day)
    passed(live_flow, late, "A", datetime(2025, 5, 20, tzinfo=UTC))  # before the period
    order(a1, day + timedelta(days=1), total=20)
    order(a1, day + timedelta(days=2), total="5.5")  # a second order: revenue, not a second conversion
    order(b1, day + timedelta(days=8), total=100)  # after the 7-day window
    order(b2, day - timedelta(hours=1), total=50)  # before the split
    order(ctrl, day + timedelta(hours=3), total=10)
    Event.objects.create(
        customer=a2, type="page_view", occurred_at=day + timedelta(hours=1), payload={"total": 9}
    )

    result = ab_test_stats(flow=live_flow, nodes=ab_nodes(live_flow), since=SINCE, until=UNTIL)

    rows = {row["variant"]: row for row in result["split"]["variants"]}
    assert [row["variant"] for row in result["split"]["variants"]] == ["A", "B", "control"]
    assert (rows["A"]["entered"], rows["A"]["conversions"], rows["A"]["revenue"]) == (2, 1, 25.5)
    assert (rows["B"]["entered"], rows["B"]["conversions"], rows["B"]["revenue"]) == (2, 0, 0.0)
    assert (rows["control"]["entered"], rows["control"]["conversions"]) == (1, 1)
    assert rows["control"]["control"] is True and rows["A"]["control"] is False
    assert rows["A"]["rate"] == 0.5
    assert (rows["A"]["ci_low"], rows["A"]["ci_high"]) == pytest.approx(wilson_interval(1, 2))
    assert result["split"]["window"] == "P7D"
    assert result["split"]["event_types"] == ["order_created", "order"]


@pytest.mark.django_db
def test_an_order_counts_once_for_the_latest_pass_before_it(live_flow, customers):
    customer = customers[0]
    passed(live_flow, customer, "A", datetime(2025, 6, 2, tzinfo=UTC))
    passed(live_flow, customer, "B", datetime(2025, 6, 4, tzinfo=UTC))
    order(customer, datetime(2025, 6, 5, tzinfo=UTC), total=30)

    result = ab_test_stats(flow=live_flow, nodes=ab_nodes(live_flow), since=SINCE, until=UNTIL)

    rows = {row["variant"]: row for row in result["split"]["variants"]}
    assert (rows["A"]["entered"], rows["A"]["conversions"], rows["A"]["revenue"]) == (1, 0, 0.0)
    assert (rows["B"]["entered"], rows["B"]["conversions"], rows["B"]["revenue"]) == (1, 1, 30.0)


@pytest.mark.django_db
def test_ab_settings_choose_the_conversion_events_and_the_window(live_flow, customers, settings):
    settings.MAESTRA_CONVERSION_EVENT_TYPES = ["purchase"]
    settings.MAESTRA_AB_ATTRIBUTION_WINDOW = "PT2H"
    day = datetime(2025, 6, 5, 10, tzinfo=UTC)
    passed(live_flow, customers[0], "A", day)
    passed(live_flow, customers[1], "A", day)
    Event.objects.create(
        customer=customers[0], type="purchase", occurred_at=day + timedelta(hours=1), payload={"revenue": 4}
    )
    Event.objects.create(
        customer=customers[1], type="purchase", occurred_at=day + timedelta(hours=3), payload={"revenue": 4}
    )
    order(customers[1], day + timedelta(minutes=5), total=99)  # not a conversion type any more

    result = ab_test_stats(flow=live_flow, nodes=ab_nodes(live_flow), since=SINCE, until=UNTIL)

    row = result["split"]["variants"][0]
    assert (row["entered"], row["conversions"], row["revenue"]) == (2, 1, 4.0)


@pytest.mark.django_db
def test_ab_stats_keep_test_runs_apart_and_show_empty_variants(live_flow, customers):
    passed(live_flow, customers[0], "A", datetime(2025, 6, 5, tzinfo=UTC), is_test=True)

    live = ab_test_stats(flow=live_flow, nodes=ab_nodes(live_flow), since=SINCE, until=UNTIL)
    test = ab_test_stats(flow=live_flow, nodes=ab_nodes(live_flow), since=SINCE, until=UNTIL, is_test=True)

    assert [(r["variant"], r["entered"], r["rate"], r["ci_low"]) for r in live["split"]["variants"]] == [
        ("A", 0, None, None),
        ("B", 0, None, None),
        ("control", 0, None, None),
    ]
    assert test["split"]["variants"][0]["entered"] == 1


# --- Limitation ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_limitation_usage_reads_the_counter_in_force(live_flow, customers):
    all_time = LimitationCounter.objects.create(
        flow=live_flow, node_key="cap", signature="all", window_start=EPOCH, used=3
    )
    LimitationCounter.objects.create(
        flow=live_flow, node_key="cap", signature="test:all", window_start=EPOCH, used=1
    )
    hourly = LimitationCounter.objects.create(
        flow=live_flow, node_key="hourly", signature="hours:1", window_start=EPOCH, used=40
    )
    for index, minutes_ago in enumerate((10, 50, 70)):  # the last one is out of the rolling hour
        run = passed(live_flow, customers[index], "B", NOW - timedelta(minutes=minutes_ago))
        LimitationGrant.objects.create(
            counter=hourly, run=run, pass_no=1, granted_at=NOW - timedelta(minutes=minutes_ago)
        )
    assert all_time.used == 3

    usage = limitation_usage(flow=live_flow, nodes=ab_nodes(live_flow), at=NOW)

    assert usage["cap"]["used"] == 3 and usage["cap"]["max"] == 5 and usage["cap"]["remaining"] == 2
    assert usage["cap"]["window_start"] == EPOCH
    assert usage["hourly"]["used"] == 2 and usage["hourly"]["remaining"] == 0
    assert usage["hourly"]["rolling_since"] == NOW - timedelta(hours=1)
    assert (
        limitation_usage(flow=live_flow, nodes=ab_nodes(live_flow), is_test=True, at=NOW)["cap"]["used"] == 1
    )


@pytest.mark.django_db
def test_limitation_usage_is_zero_before_any_pass_and_skips_invalid_configs(live_flow):
    nodes = [
        *ab_nodes(live_flow),
        {"key": "broken", "kind": "limitation", "config": {"max": 3, "period": {"unit": "x"}}},
    ]

    usage = limitation_usage(flow=live_flow, nodes=nodes, at=NOW)

    assert usage["cap"] == {
        "max": 5,
        "used": 0,
        "remaining": 5,
        "period": None,
        "window_start": EPOCH,
        "rolling_since": None,
    }
    assert "broken" not in usage


@pytest.mark.django_db
def test_canvas_stats_put_everything_on_its_node_in_a_few_queries(
    live_flow, customers, django_assert_max_num_queries
):
    for customer in customers:
        passed(live_flow, customer, "A", datetime(2025, 6, 5, tzinfo=UTC))
        order(customer, datetime(2025, 6, 6, tzinfo=UTC), total=1)

    # A fixed number whatever the audience: 13 since the recorded A/B winners
    # (one query per flow) and the flow's goal (read once) joined the figures.
    with time_machine.travel(NOW, tick=False), django_assert_max_num_queries(13):
        stats = canvas_stats(flow=live_flow, since=SINCE, until=UNTIL)

    assert stats["nodes"]["split"]["ab_test"]["variants"][0]["conversions"] == 6
    assert stats["nodes"]["cap"]["limitation"]["remaining"] == 5
    assert stats["nodes"]["start"]["ab_test"] is None and stats["nodes"]["start"]["limitation"] is None
