"""The event-history leaf {"event", "where", "within", "op", "value"} (SPEC §13):
validation naming the field, both implementations (SQL `to_q` and Python
`evaluate_many`) on hand-made histories, the run's clock in Python, batch
loading and the segment API's error shape."""

import dataclasses
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer, Event, Segment
from customers.rules import compile_predicate, evaluate_many, load_facts, validate_rule
from tests.customers.kit import RULES_NOW as NOW
from tests.customers.kit import select

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_clock")]


@pytest.fixture
def history():
    """ann: 3 orders (2 in the last 30 days, one of them over 100), a page view;
    bob: one old order; cid: nothing."""
    ann = Customer.objects.create(external_id="ann")
    bob = Customer.objects.create(external_id="bob")
    Customer.objects.create(external_id="cid")

    def order(customer, ago: timedelta, **payload) -> Event:
        return Event(customer=customer, type="order_created", occurred_at=NOW - ago, payload=payload)

    Event.objects.bulk_create(
        [
            order(ann, timedelta(days=2), total=150),
            order(ann, timedelta(days=29), total=20),
            order(ann, timedelta(days=90), total=500),
            Event(
                customer=ann, type="page_view", occurred_at=NOW - timedelta(hours=1), payload={"url": "/a"}
            ),
            order(bob, timedelta(days=200)),
            order(bob, -timedelta(seconds=2)),  # after "now": never counted
        ]
    )
    return ann, bob


def test_counts_windows_and_where_select_the_same_customers_in_sql_and_python(history):
    orders = {"event": "order_created", "where": None, "within": None}
    assert select({**orders, "op": "exists"}) == {"ann", "bob"}
    assert select({**orders, "op": "not_exists"}) == {"cid"}
    assert select({**orders, "op": "count_gte", "value": 3}) == {"ann"}
    assert select({**orders, "op": "count_eq", "value": 1}) == {"bob"}
    assert select({**orders, "op": "count_eq", "value": 0}) == {"cid"}
    assert select({**orders, "op": "count_lte", "value": 1}) == {"bob", "cid"}
    assert select({**orders, "within": "P30D", "op": "count_gte", "value": 2}) == {"ann"}
    assert select({**orders, "within": "P1D", "op": "exists"}) == set()
    over_100 = {"field": "event.total", "op": "gt", "value": 100}
    assert select({**orders, "where": over_100, "op": "count_eq", "value": 2}) == {"ann"}
    assert select({**orders, "where": over_100, "within": "P30D", "op": "count_eq", "value": 1}) == {"ann"}
    assert select({"not": {**orders, "where": over_100, "op": "exists"}}) == {"bob", "cid"}
    # Combined with field leaves.
    assert select(
        {"all": [{**orders, "op": "exists"}, {"field": "customer.external_id", "op": "ne", "value": "ann"}]}
    ) == {"bob"}


def test_the_window_edges_are_inclusive_at_one_second_precision(history):
    ann = Customer.objects.get(external_id="ann")
    Event.objects.create(
        customer=ann, type="signup", occurred_at=NOW - timedelta(days=7, microseconds=400000), payload={}
    )
    # now - P7D = 12:00:00.5 → 12:00:00 truncated; the event at 12:00:00.1 counts.
    assert select({"event": "signup", "within": "P7D", "op": "exists"}) == {"ann"}
    assert select({"event": "signup", "within": "PT167H", "op": "exists"}) == set()


def test_python_counts_back_from_the_runs_clock(history):
    ann, _bob = history
    rule = {"event": "order_created", "within": "P30D", "op": "count_gte", "value": 2}
    clock = NOW - timedelta(days=10)  # the run's clock: the order of 2 days ago has not happened yet
    facts = load_facts(rule, [ann.id], clocks=[clock])
    matches = compile_predicate(rule)
    assert matches(facts[ann.id], NOW) is True
    assert matches(dataclasses.replace(facts[ann.id], clock=clock), NOW) is False
    earlier = NOW - timedelta(days=80)  # then only the order of 90 days ago lies within 30 days
    facts = load_facts(rule, [ann.id], clocks=[earlier])
    one = {"event": "order_created", "within": "P30D", "op": "count_eq", "value": 1}
    assert compile_predicate(one)(dataclasses.replace(facts[ann.id], clock=earlier), NOW) is True


def test_facts_load_in_one_query_per_counted_event_type_whatever_the_number_of_customers(history):
    rule = {
        "any": [
            {"event": "order_created", "within": "P30D", "op": "exists"},
            {
                "event": "order_created",
                "where": {"field": "event.total", "op": "gt", "value": 1},
                "op": "exists",
            },
            {"event": "page_view", "op": "count_gte", "value": 1},
        ]
    }
    Customer.objects.bulk_create(Customer(external_id=f"more-{index}") for index in range(40))
    ids = list(Customer.objects.values_list("id", flat=True))
    with CaptureQueriesContext(connection) as queries:
        facts = load_facts(rule, ids)
    assert len(queries) == 3  # customers, order_created, page_view
    ann = Customer.objects.get(external_id="ann")
    assert len(facts[ann.id].history["order_created"]) == 3
    assert evaluate_many(rule, ids) == {ann.id}  # bob's one order is old and has no total


def test_segment_rules_count_events_too(history):
    Segment.objects.create(
        slug="buyers",
        name="Buyers",
        kind=Segment.Kind.RULE,
        rule={"event": "order_created", "within": "P365D", "op": "count_gte", "value": 1},
    )
    assert select({"field": "segment", "op": "in", "value": ["buyers"]}) == {"ann", "bob"}


@pytest.mark.parametrize(
    ("leaf", "where", "message"),
    [
        ({"event": "", "op": "exists"}, "event", "event type"),
        ({"event": "x" * 101, "op": "exists"}, "event", "at most 100"),
        ({"event": "o", "op": "count_gte"}, "value", "whole number"),
        ({"event": "o", "op": "count_gte", "value": 2.5}, "value", "whole number"),
        ({"event": "o", "op": "count_gte", "value": True}, "value", "whole number"),
        ({"event": "o", "op": "count_eq", "value": -1}, "value", "between 0"),
        ({"event": "o", "op": "count_lte", "value": 2**31}, "value", "between 0"),
        ({"event": "o", "op": "gt", "value": 1}, "op", "unknown op"),
        ({"event": "o", "op": "exists", "within": "P101Y"}, "within", "100 years"),
        ({"event": "o", "op": "exists", "within": "soon"}, "within", "ISO 8601"),
        ({"event": "o", "op": "exists", "field": "event.a"}, "field", "unknown key"),
        (
            {"event": "o", "op": "exists", "where": {"field": "customer.email", "op": "exists"}},
            "where.field",
            "counted event",
        ),
        (
            {"event": "o", "op": "exists", "where": {"event": "p", "op": "exists"}},
            "where.event",
            "cannot count",
        ),
        (
            {"event": "o", "op": "exists", "where": {"field": "event.a", "op": "gt", "value": "x"}},
            "where.value",
            "number",
        ),
    ],
)
def test_bad_leaves_name_the_field(leaf, where, message):
    problems = validate_rule({"all": [leaf]}, allow_event=False)
    assert problems, leaf
    assert problems[0][0] == f"all.0.{where}"
    assert message in problems[0][1]


def test_the_where_counts_towards_the_nesting_limit():
    where = {"field": "event.a", "op": "exists"}
    for _ in range(9):
        where = {"not": where}
    leaf = {"event": "o", "op": "exists", "where": where}
    # The leaf is level 1, the where starts at level 2: 9 nots put its field leaf at 11.
    assert validate_rule(leaf)[0][1] == "rules nest at most 10 levels deep"
    assert validate_rule({**leaf, "where": where["not"]}) == []


def test_a_bad_leaf_in_a_segment_gets_the_json_error_shape(client, django_user_model):
    from rest_framework.test import APIClient

    from maestra.api.models import ApiKey

    _record, key = ApiKey.objects.create_key(name="tests")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = api.post(
        "/api/v1/segments",
        {
            "slug": "s",
            "name": "S",
            "kind": "rule",
            "rule": {"event": "order_created", "op": "count_gte", "value": -2},
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert any(item.get("field", "").startswith("rule.value") for item in body["errors"]), body
