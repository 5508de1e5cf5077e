"""The canvas statistics of a flow with a goal (SPEC §13): the A/B variants
count the goal instead of the site-wide conversion event types, and every
node carries its goal figures."""

import copy
from datetime import UTC, datetime

import pytest
import time_machine

from flows import lifecycle
from flows.selectors.canvas_stats import canvas_stats
from tests.flows.test_admin_stats import AB_DOCUMENT, NOW, SINCE, UNTIL, customers, live_flow, order, passed  # noqa: F401

GOAL = {
    "event_type": "purchase",
    "filter": {"field": "event.total", "op": "gt", "value": 5},
    "window": "P2D",
    "value_field": "event.total",
}


@pytest.fixture
def goal_flow(db):
    document = copy.deepcopy(AB_DOCUMENT)
    document["goal"] = GOAL
    flow = lifecycle.create_flow(document=document)
    assert flow.draft.errors == []
    lifecycle.launch_flow(flow=flow, enqueue=False)
    return lifecycle.finish_launch(flow_id=flow.pk)


def purchase(customer, at, **payload):
    from customers.models import Event

    Event.objects.create(customer=customer, type="purchase", occurred_at=at, payload=payload)


@pytest.mark.django_db
def test_a_flow_with_a_goal_counts_it_on_the_ab_variants_and_the_nodes(goal_flow, customers):  # noqa: F811
    day = datetime(2025, 6, 5, tzinfo=UTC)
    for customer in customers[:4]:
        run = passed(goal_flow, customer, "A", day)
        run.entered_at = day
        run.save(update_fields=["entered_at"])
    order(customers[0], datetime(2025, 6, 5, 12, tzinfo=UTC), total=100)  # a site-wide order: ignored
    purchase(customers[1], datetime(2025, 6, 5, 12, tzinfo=UTC), total=30)  # converts
    purchase(customers[2], datetime(2025, 6, 5, 12, tzinfo=UTC), total=3)  # below the filter
    purchase(customers[3], datetime(2025, 6, 8, tzinfo=UTC), total=50)  # after the 2-day window

    with time_machine.travel(NOW, tick=False):
        stats = canvas_stats(flow=goal_flow, since=SINCE, until=UNTIL)

    ab = stats["nodes"]["split"]["ab_test"]
    variant_a = next(v for v in ab["variants"] if v["variant"] == "A")
    assert (variant_a["entered"], variant_a["conversions"], variant_a["revenue"]) == (4, 1, 30.0)
    assert (ab["event_types"], ab["window"]) == (["purchase"], "P2D")
    assert stats["goal"]["converted"] == 1 and stats["goal"]["value"] == 30.0
    assert stats["nodes"]["split"]["goal"]["ports"]["A"] == {
        "entered": 4,
        "converted": 1,
        "rate": 0.25,
        "value": 30.0,
    }


@pytest.mark.django_db
def test_without_a_goal_the_canvas_has_no_goal_figures(live_flow):  # noqa: F811
    with time_machine.travel(NOW, tick=False):
        stats = canvas_stats(flow=live_flow, since=SINCE, until=UNTIL)
    assert stats["goal"] is None
    assert all(node["goal"] is None for node in stats["nodes"].values())
