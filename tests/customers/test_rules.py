"""Rule semantics, example by example. Every selection is checked through both
implementations (SQL `to_q` and Python `evaluate_many`)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer, PointsEntry, Segment, SegmentMembership, Subscription
from customers.rules import (
    RuleError,
    RuleFacts,
    evaluate,
    evaluate_many,
    load_facts,
    segment_customer_ids_queryset,
    segment_q,
    to_q,
    value_at,
)
from tests.customers.kit import RULES_NOW as NOW
from tests.customers.kit import promo_pool, select

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_clock")]


def make(name, **attrs):
    return Customer.objects.create(external_id=name, **attrs)


def leaf(field, op, value=None):
    node = {"field": field, "op": op}
    if value is not None:
        node["value"] = value
    return node


@pytest.fixture
def typed():
    """One customer per JSON type of fields.v."""
    make("int5", fields={"v": 5})
    make("float5", fields={"v": 5.0})
    make("float2_5", fields={"v": 2.5})
    make("str5", fields={"v": "5"})
    make("true", fields={"v": True})
    make("false", fields={"v": False})
    make("one", fields={"v": 1})
    make("null", fields={"v": None})
    make("missing", fields={})
    make("list", fields={"v": [5, "x", True]})
    make("object", fields={"v": {"w": 5}})
    make("text", fields={"v": "Gold member"})


def test_eq_is_type_strict(typed):
    assert select(leaf("customer.fields.v", "eq", 5)) == {"int5", "float5"}
    assert select(leaf("customer.fields.v", "eq", 5.0)) == {"int5", "float5"}
    assert select(leaf("customer.fields.v", "eq", "5")) == {"str5"}
    assert select(leaf("customer.fields.v", "eq", True)) == {"true"}
    assert select(leaf("customer.fields.v", "eq", 1)) == {"one"}
    assert select(leaf("customer.fields.v", "eq", False)) == {"false"}
    assert select(leaf("customer.fields.v", "eq", 0)) == set()


def test_ne_is_not_eq_so_missing_and_null_match(typed):
    assert select(leaf("customer.fields.v", "ne", 5)) == {
        "str5",
        "float2_5",
        "true",
        "false",
        "one",
        "null",
        "missing",
        "list",
        "object",
        "text",
    }


def test_numeric_comparisons_only_take_numbers(typed):
    assert select(leaf("customer.fields.v", "gt", 2.5)) == {"int5", "float5"}
    assert select(leaf("customer.fields.v", "gte", 2.5)) == {"int5", "float5", "float2_5"}
    assert select(leaf("customer.fields.v", "lt", 5)) == {"float2_5", "one"}
    assert select(leaf("customer.fields.v", "lte", 5)) == {"float2_5", "one", "int5", "float5"}
    # "5", true, lists: never numeric.
    assert select(leaf("customer.fields.v", "gt", -100)) == {"int5", "float5", "float2_5", "one"}


def test_float_precision_matches_python():
    make("tiny_over", fields={"v": 0.30000000000000004})
    make("exact", fields={"v": 0.3})
    assert select(leaf("customer.fields.v", "gt", 0.3)) == {"tiny_over"}
    assert select(leaf("customer.fields.v", "eq", 0.3)) == {"exact"}


def test_in_and_not_in(typed):
    assert select(leaf("customer.fields.v", "in", ["5", True])) == {"str5", "true"}
    assert select(leaf("customer.fields.v", "not_in", [5, "5", True, False, 1, 2.5])) == {
        "null",
        "missing",
        "list",
        "object",
        "text",
    }


def test_contains_is_substring_or_array_membership(typed):
    assert select(leaf("customer.fields.v", "contains", "Gold")) == {"text"}
    assert select(leaf("customer.fields.v", "contains", "gold")) == set()  # case-sensitive
    assert select(leaf("customer.fields.v", "contains", "x")) == {"list"}
    assert select(leaf("customer.fields.v", "contains", 5)) == {"list"}
    assert select(leaf("customer.fields.v", "contains", True)) == {"list"}
    assert select(leaf("customer.fields.v", "contains", 1)) == set()  # true is not 1
    assert select(leaf("customer.fields.v", "contains", "5")) == {"str5"}


def test_contains_does_not_treat_like_wildcards_specially():
    make("percent", fields={"v": "50% off"})
    make("plain", fields={"v": "50 off"})
    assert select(leaf("customer.fields.v", "contains", "0%")) == {"percent"}
    assert select(leaf("customer.fields.v", "contains", "_")) == set()


def test_exists_ignores_null(typed):
    assert select(leaf("customer.fields.v", "not_exists")) == {"null", "missing"}
    assert len(select(leaf("customer.fields.v", "exists"))) == 10


def test_nested_field_names_walk_objects_not_arrays():
    make("berlin", fields={"address": {"city": "Berlin"}})
    make("flat", fields={"address.city": "Berlin"})
    make("array", fields={"address": [{"city": "Berlin"}], "items": ["a"]})
    make("scalar", fields={"address": "Berlin"})
    assert select(leaf("customer.fields.address.city", "eq", "Berlin")) == {"berlin"}
    assert select(leaf("customer.fields.items.0", "exists")) == set()


def test_before_and_after_compare_utc_moments():
    make("date", fields={"d": "2024-01-01"})  # midnight UTC
    make("offset", fields={"d": "2024-01-01T01:30:00+02:00"})  # 2023-12-31 23:30 UTC
    make("zulu", fields={"d": "2024-01-01T00:00:00.999Z"})  # same second as midnight
    make("space", fields={"d": "2024-01-01 00:00:01"})
    make("not_a_day", fields={"d": "2023-02-30"})
    make("garbage", fields={"d": "yesterday"})
    make("number", fields={"d": 20240101})
    make("nothing", fields={})
    assert select(leaf("customer.fields.d", "before", "2024-01-01")) == {"offset"}
    assert select(leaf("customer.fields.d", "after", "2024-01-01T00:00:00Z")) == {"space"}
    assert select(leaf("customer.fields.d", "after", "2023-12-31T23:00:00-01:00")) == {"space"}
    assert select(leaf("customer.fields.d", "before", "2024-01-01T00:00:01")) == {"date", "offset", "zulu"}


def test_invalid_calendar_days_are_not_dates():
    make("feb29_leap", fields={"d": "2024-02-29"})
    make("feb29_plain", fields={"d": "2023-02-29"})
    make("apr31", fields={"d": "2024-04-31"})
    assert select(leaf("customer.fields.d", "after", "2000-01-01")) == {"feb29_leap"}


def test_within_last_is_inclusive_at_second_precision():
    make("now", fields={"seen": "2024-06-15T12:00:00Z"})  # now, truncated
    make("day_ago", fields={"seen": "2024-06-14T12:00:00Z"})
    make("just_older", fields={"seen": "2024-06-14T11:59:59.999Z"})
    make("future", fields={"seen": "2024-06-15T12:00:01Z"})
    make("local", fields={"seen": "2024-06-15T08:00:00-02:00"})  # 10:00 UTC
    assert select(leaf("customer.fields.seen", "within_last", "P1D")) == {"now", "day_ago", "local"}
    assert select(leaf("customer.fields.seen", "within_last", "PT2H")) == {"now", "local"}
    assert select(leaf("customer.fields.seen", "within_last", "PT0S")) == {"now"}


def test_within_last_counts_months_on_the_calendar():
    make("may15", fields={"seen": "2024-05-15T12:00:00Z"})
    make("may14", fields={"seen": "2024-05-14T23:00:00Z"})
    assert select(leaf("customer.fields.seen", "within_last", "P1M")) == {"may15"}


def test_customer_string_attributes():
    make("ann", email="ann@example.com", first_name="Ann")
    make("bob", email="BOB@example.com", first_name="")
    make("nobody", email="")
    assert select(leaf("customer.email", "eq", "ann@example.com")) == {"ann"}
    assert select(leaf("customer.email", "contains", "bob")) == set()  # case-sensitive
    assert select(leaf("customer.email", "contains", "BOB")) == {"bob"}
    assert select(leaf("customer.email", "exists")) == {"ann", "bob"}
    assert select(leaf("customer.email", "not_exists")) == {"nobody"}
    assert select(leaf("customer.first_name", "eq", "")) == {"bob", "nobody"}
    assert select(leaf("customer.first_name", "in", ["Ann", "Zed"])) == {"ann"}
    assert select(leaf("customer.first_name", "not_in", ["Ann"])) == {"bob", "nobody"}
    assert select(leaf("customer.external_id", "ne", "ann")) == {"bob", "nobody"}


def test_customer_created_at():
    make("old", created_at=datetime(2020, 1, 1, tzinfo=UTC))
    make("same_second", created_at=datetime(2024, 1, 1, 0, 0, 0, 700000, tzinfo=UTC))
    make("recent", created_at=NOW - timedelta(hours=3))
    assert select(leaf("customer.created_at", "before", "2024-01-01")) == {"old"}
    assert select(leaf("customer.created_at", "after", "2024-01-01")) == {"recent"}
    assert select(leaf("customer.created_at", "within_last", "P1D")) == {"recent"}
    assert select(leaf("customer.created_at", "exists")) == {"old", "same_second", "recent"}
    assert select(leaf("customer.created_at", "not_exists")) == set()


def test_subscriptions_without_a_row_have_no_status():
    subscribed = make("subscribed")
    pending = make("pending")
    make("never")
    Subscription.objects.create(customer=subscribed, channel="email", status="subscribed")
    Subscription.objects.create(customer=pending, channel="email", status="requires_confirmation")
    Subscription.objects.create(customer=pending, channel="sms", status="subscribed")
    assert select(leaf("subscription.email", "eq", "subscribed")) == {"subscribed"}
    assert select(leaf("subscription.email", "ne", "subscribed")) == {"pending", "never"}
    assert select(leaf("subscription.email", "in", ["subscribed", "requires_confirmation"])) == {
        "subscribed",
        "pending",
    }
    assert select(leaf("subscription.email", "not_in", ["unsubscribed"])) == {
        "subscribed",
        "pending",
        "never",
    }
    assert select(leaf("subscription.sms", "exists")) == {"pending"}
    assert select(leaf("subscription.sms", "not_exists")) == {"subscribed", "never"}


def test_points_count_only_unexpired_entries():
    rich = make("rich")
    expired = make("expired")
    make("none")
    PointsEntry.objects.create(customer=rich, amount=100)
    PointsEntry.objects.create(customer=rich, amount=50, expires_at=NOW + timedelta(days=1))
    PointsEntry.objects.create(customer=rich, amount=-30)
    PointsEntry.objects.create(customer=expired, amount=500, expires_at=NOW - timedelta(seconds=1))
    PointsEntry.objects.create(customer=expired, amount=500, expires_at=NOW)  # expiring now: gone
    PointsEntry.objects.create(customer=expired, amount=7)
    assert select(leaf("points", "eq", 120)) == {"rich"}
    assert select(leaf("points", "eq", 7)) == {"expired"}
    assert select(leaf("points", "eq", 0)) == {"none"}
    assert select(leaf("points", "gte", 7)) == {"rich", "expired"}
    assert select(leaf("points", "gt", 119.5)) == {"rich"}
    assert select(leaf("points", "gte", 119.5)) == {"rich"}
    assert select(leaf("points", "lte", 119.5)) == {"expired", "none"}
    assert select(leaf("points", "in", [0, 7])) == {"expired", "none"}
    assert select(leaf("points", "not_in", [0, 7])) == {"rich"}
    assert select(leaf("points", "ne", 0)) == {"rich", "expired"}
    assert select(leaf("points", "exists")) == {"rich", "expired", "none"}
    assert select(leaf("points", "not_exists")) == set()


def test_promo_pool_availability_counts_unissued_codes():
    make("ann")
    promo_pool("summer", None, NOW)  # one free code, one given out
    assert select(leaf("promo_pool.summer.available", "eq", 1)) == {"ann"}
    assert select(leaf("promo_pool.summer.available", "gt", 1)) == set()
    assert select(leaf("promo_pool.unknown.available", "eq", 0)) == {"ann"}


def test_segments_static_and_rule_based():
    ann = make("ann", fields={"tier": "gold"})
    bob = make("bob", fields={"tier": "silver"})
    make("cid")
    vip = Segment.objects.create(slug="vip", name="VIP")
    SegmentMembership.objects.create(segment=vip, customer=bob)
    Segment.objects.create(
        slug="gold", name="Gold", kind="rule", rule=leaf("customer.fields.tier", "eq", "gold")
    )
    Segment.objects.create(
        slug="gold-or-vip",
        name="Gold or VIP",
        kind="rule",
        rule=leaf("segment", "in", ["gold", "vip"]),
    )
    assert select(leaf("segment", "in", ["vip"])) == {"bob"}
    assert select(leaf("segment", "in", ["gold"])) == {"ann"}
    assert select(leaf("segment", "in", ["gold-or-vip"])) == {"ann", "bob"}
    assert select(leaf("segment", "not_in", ["gold-or-vip"])) == {"cid"}
    assert select(leaf("segment", "in", ["nope"])) == set()
    assert select(leaf("segment", "not_in", ["nope"])) == {"ann", "bob", "cid"}
    assert set(segment_customer_ids_queryset("gold-or-vip")) == {ann.id, bob.id}
    assert set(Customer.objects.filter(segment_q(vip)).values_list("external_id", flat=True)) == {"bob"}


def test_segments_referring_to_each_other_raise():
    make("ann")
    Segment.objects.create(slug="a", name="A", kind="rule", rule=leaf("segment", "in", ["b"]))
    Segment.objects.create(slug="b", name="B", kind="rule", rule={"not": leaf("segment", "in", ["a"])})
    Segment.objects.create(slug="self", name="S", kind="rule", rule=leaf("segment", "not_in", ["self"]))
    for slug in ("a", "self"):
        with pytest.raises(RuleError, match="refer to each other"):
            to_q(leaf("segment", "in", [slug]))
        with pytest.raises(RuleError, match="refer to each other"):
            evaluate_many(leaf("segment", "in", [slug]), list(Customer.objects.values_list("id", flat=True)))
        with pytest.raises(RuleError, match="refer to each other"):
            segment_customer_ids_queryset(slug)


def test_segment_rules_may_not_read_the_event():
    make("ann")
    Segment.objects.create(slug="ev", name="Ev", kind="rule", rule=leaf("event.total", "gt", 1))
    with pytest.raises(RuleError, match="event"):
        to_q(leaf("segment", "in", ["ev"]))
    with pytest.raises(RuleError, match="event"):
        evaluate_many(leaf("segment", "in", ["ev"]), list(Customer.objects.values_list("id", flat=True)))


def test_unknown_segment_slug_for_queryset_raises():
    with pytest.raises(RuleError, match="unknown segment"):
        segment_customer_ids_queryset("ghost")


def test_event_paths_read_the_trigger_payload():
    ann = make("ann")
    bob = make("bob")
    cid = make("cid")
    events = {ann.id: {"total": 150, "items": {"sku": "A1"}}, bob.id: {"total": "150"}}
    assert select(leaf("event.total", "gte", 100), events=events) == {"ann"}
    assert select(leaf("event.items.sku", "eq", "A1"), events=events) == {"ann"}
    assert select(leaf("event.total", "not_exists"), events=events) == {"cid"}
    assert cid.id not in events


def test_event_paths_cannot_become_sql():
    with pytest.raises(RuleError, match="event"):
        to_q({"all": [leaf("points", "gt", 0), leaf("event.total", "gt", 1)]})


def test_combinators():
    make("a", fields={"x": 1, "y": 1})
    make("b", fields={"x": 1})
    make("c", fields={"y": 1})
    x, y = leaf("customer.fields.x", "eq", 1), leaf("customer.fields.y", "eq", 1)
    assert select({"all": [x, y]}) == {"a"}
    assert select({"any": [x, y]}) == {"a", "b", "c"}
    assert select({"not": {"any": [x, y]}}) == set()
    assert select({"all": [x, {"not": y}]}) == {"b"}
    assert select({"not": {"not": x}}) == {"a", "b"}


def test_invalid_rules_raise_rule_error():
    with pytest.raises(RuleError, match="all"):
        to_q({"all": []})
    with pytest.raises(RuleError):
        evaluate({"field": "points", "op": "gt", "value": "x"}, RuleFacts())
    with pytest.raises(RuleError):
        evaluate_many({"field": "nope", "op": "eq", "value": 1}, [1])


def test_evaluate_works_on_hand_built_facts():
    facts = RuleFacts(
        customer={"email": "a@x.io", "created_at": NOW - timedelta(days=2)},
        fields={"tier": "gold", "tags": ["a"]},
        event={"total": 10},
        subscriptions={"email": "subscribed"},
        segments={"vip"},
        points=42,
        pool_available={"summer": 3},
    )
    assert evaluate(
        {
            "all": [
                leaf("customer.email", "contains", "@x"),
                leaf("customer.created_at", "within_last", "P3D"),
                leaf("customer.fields.tags", "contains", "a"),
                leaf("event.total", "lt", 11),
                leaf("subscription.email", "eq", "subscribed"),
                leaf("subscription.sms", "not_exists"),
                leaf("segment", "in", ["vip", "x"]),
                leaf("points", "eq", 42),
                leaf("promo_pool.summer.available", "gte", 3),
                leaf("promo_pool.winter.available", "eq", 0),
            ]
        },
        facts,
    )
    assert not evaluate(leaf("customer.created_at", "within_last", "P1D"), facts)


def test_load_facts_reads_only_what_the_rule_needs():
    customer = make("ann", email="a@x.io", fields={"tier": "gold"})
    PointsEntry.objects.create(customer=customer, amount=5)
    with CaptureQueriesContext(connection) as queries:
        facts = load_facts(leaf("customer.fields.tier", "eq", "gold"), [customer.id])
    assert len(queries) == 1
    assert facts[customer.id].fields == {"tier": "gold"}
    assert facts[customer.id].points == 0  # not loaded: the rule does not read points
    assert not any("points" in query["sql"] for query in queries.captured_queries)
    with CaptureQueriesContext(connection) as queries:
        assert load_facts(leaf("customer.fields.tier", "eq", "gold"), []) == {}
    assert len(queries) == 0


def test_load_facts_leaves_out_customers_that_do_not_exist():
    customer = make("ann")
    PointsEntry.objects.create(customer=customer, amount=3)
    facts = load_facts(leaf("points", "gt", 0), [customer.id, customer.id + 1000])
    assert list(facts) == [customer.id]
    assert facts[customer.id].points == 3
    assert evaluate_many(leaf("points", "gt", 0), [customer.id + 1000]) == set()


def test_load_facts_for_a_thousand_customers_uses_a_bounded_number_of_queries():
    customers = Customer.objects.bulk_create(
        Customer(external_id=f"c{index}", email=f"c{index}@x.io", fields={"n": index})
        for index in range(1000)
    )
    ids = [customer.id for customer in customers]
    static = Segment.objects.create(slug="s", name="S")
    SegmentMembership.objects.bulk_create(
        SegmentMembership(segment=static, customer_id=customer_id) for customer_id in ids[::3]
    )
    Segment.objects.create(slug="r", name="R", kind="rule", rule=leaf("customer.fields.n", "lt", 100))
    Subscription.objects.bulk_create(
        Subscription(customer_id=customer_id, channel="email", status="subscribed")
        for customer_id in ids[::2]
    )
    PointsEntry.objects.bulk_create(
        PointsEntry(customer_id=customer_id, amount=10) for customer_id in ids[::5]
    )
    promo_pool("p")
    rule = {
        "any": [
            leaf("segment", "in", ["s", "r"]),
            {
                "all": [
                    leaf("subscription.email", "eq", "subscribed"),
                    leaf("points", "gt", 0),
                    leaf("customer.email", "exists"),
                    leaf("promo_pool.p.available", "eq", 0),
                ]
            },
        ]
    }
    with CaptureQueriesContext(connection) as queries:
        facts = load_facts(rule, ids, events={ids[0]: {"x": 1}})
    # segments, customers, subscriptions, memberships, points, pools
    assert len(queries) == 6
    assert len(facts) == 1000
    assert facts[ids[0]].event == {"x": 1}
    assert facts[ids[1]].event is None
    expected = {
        customer_id
        for index, customer_id in enumerate(ids)
        if index % 3 == 0 or index < 100 or (index % 2 == 0 and index % 5 == 0)
    }
    assert evaluate_many(rule, ids) == expected
    assert set(Customer.objects.filter(to_q(rule)).values_list("id", flat=True)) == expected


def test_to_q_composes_with_other_filters_and_negation():
    make("a", fields={"x": 1}, email="a@x.io")
    make("b", fields={"x": 2}, email="b@x.io")
    query = Customer.objects.filter(email__startswith="a").exclude(to_q(leaf("customer.fields.x", "eq", 2)))
    assert list(query.values_list("external_id", flat=True)) == ["a"]
    assert Customer.objects.exclude(to_q(leaf("customer.fields.x", "eq", 2))).count() == 1


def test_value_at_reads_what_rules_see():
    customer = make("ann", email="", first_name="Ann", fields={"address": {"city": "Berlin"}, "gone": None})
    Subscription.objects.create(customer=customer, channel="sms", status="unsubscribed")
    PointsEntry.objects.create(customer=customer, amount=12)
    paths = ["customer.email", "customer.first_name", "customer.fields.address.city", "customer.fields.gone",
             "customer.fields.nothing.here", "subscription.sms", "subscription.email", "points",
             "promo_pool.none.available", "event.total"]  # fmt: skip
    rule = {"all": [{"field": path, "op": "exists"} for path in paths]}
    facts = load_facts(rule, [customer.id], events={customer.id: {"total": 9.5}})[customer.id]
    assert [value_at(path, facts) for path in paths] == [
        None,
        "Ann",
        "Berlin",
        None,
        None,
        "unsubscribed",
        None,
        12,
        0,
        9.5,
    ]
    with pytest.raises(RuleError):
        value_at("segment", facts)
