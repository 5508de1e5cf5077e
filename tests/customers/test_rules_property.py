"""The Python predicate and the SQL Q must select the same customers, on the
database the suite runs on (CI runs it on PostgreSQL, locally SQLite too)."""

import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import (
    Customer,
    PointsEntry,
    PromoCode,
    PromoPool,
    Segment,
    SegmentMembership,
    Subscription,
)
from customers.rules import evaluate_many, to_q, validate_rule

NOW = datetime(2024, 6, 15, 12, 0, 0, 250000, tzinfo=UTC)

KEYS = ["a", "b", "c-d", "E_2"]
# Stored but not addressable by a rule path (ASCII names only).
DATA_KEYS = [*KEYS, "é"]
STRINGS = ["", "5", "abc", "ABC", "bc", "gold", "Gold", "a%b", "a_b", "ü"]
NUMBERS = [0, 1, -1, 5, 2.5, 5.0, -0.5, 0.1, 0.30000000000000004, 1e-7, 10**15, 2**53]
DATES = [
    "2024-06-15",
    "2024-06-14T12:00:00Z",
    "2024-06-15T11:59:59.999999+00:00",
    "2024-06-15T13:00:00+01:00",
    "2024-06-15 12:00:00",
    "2024-06-15T12:00:00.9",
    "2024-06-15T12:00",
    "2024-06-15T14:00+02:00",
    "2024-06-15T02:00:00-10:00",
    "2024-06-16T01:59:59+14:00",
    "2024-05-15T12:00:00Z",
    "2024-03-15T11:59:59Z",
    "2024-02-29",
    "2023-01-01T00:00:00.123456-03:30",
    "1999-12-31T23:59:59Z",
]
NOT_DATES = [
    "2024-02-30",
    "2023-02-29",
    "2024-04-31",
    "2024-06-15T24:00:00",
    "2024-06-15T12:00:00z",
    "2024-06-15T12:00:00.1234567",
    "2024-06-15T12:00:00+15:00",
    "2024-06-15 12:00:00\n",
    "0999-01-01",
    "15/06/2024",
    "2024-6-15",
    "2024-06-15Z",
]
DURATIONS = ["P0D", "PT1H", "P1D", "P1W", "P1M", "P3M", "PT0S", "P1Y"]
CHANNELS = ["email", "sms"]
STATUSES = ["subscribed", "requires_confirmation", "unsubscribed"]
SEGMENTS = ["s1", "s2", "r1", "r2", "missing"]

scalars = st.one_of(
    st.sampled_from(STRINGS),
    st.sampled_from(NUMBERS),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.sampled_from(DATES + NOT_DATES),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(DATA_KEYS), children, max_size=3)
    ),
    max_leaves=6,
)
_ABSENT = object()


def _with_date_key(parts):
    # Most rules on "d" are date ops, so give it a date-like value most of the time.
    fields, date_like = parts
    return fields if date_like is _ABSENT else {**fields, "d": date_like}


moments = st.sampled_from(
    [
        NOW,
        NOW - timedelta(microseconds=250000),
        NOW + timedelta(microseconds=750000),
        NOW - timedelta(hours=1),
        NOW - timedelta(days=1),
        NOW - timedelta(days=1, microseconds=1),
        NOW - timedelta(days=40),
        datetime(2024, 6, 15, tzinfo=UTC),
        datetime(2024, 6, 14, 23, 59, 59, 999999, tzinfo=UTC),
    ]
)
customers = st.fixed_dictionaries(
    {
        "email": st.sampled_from(["", "a@x.io", "B@x.io", "ab@x.io"]),
        "first_name": st.sampled_from(["", "Ann", "ann", "Anna"]),
        "created_at": moments,
        "fields": st.tuples(
            st.dictionaries(st.sampled_from(DATA_KEYS), json_values, max_size=4),
            st.one_of(st.sampled_from(DATES + NOT_DATES), scalars, st.just(_ABSENT)),
        ).map(_with_date_key),
        "subscriptions": st.dictionaries(st.sampled_from(CHANNELS), st.sampled_from(STATUSES)),
        "static": st.sets(st.sampled_from(["s1", "s2"])),
        "points": st.lists(
            st.tuples(st.integers(-50, 100), st.sampled_from([None, "past", "now", "future"])), max_size=3
        ),
    }
)

json_paths = st.one_of(
    st.just("customer.fields.d"),
    st.lists(st.sampled_from(KEYS), min_size=1, max_size=2).map(
        lambda keys: "customer.fields." + ".".join(keys)
    ),
)
rule_scalars = st.one_of(
    st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans(), st.sampled_from(DATES)
)


def _json_leaf(path, op, draw):
    if op in ("eq", "ne", "contains"):
        return {"field": path, "op": op, "value": draw(rule_scalars)}
    if op in ("gt", "gte", "lt", "lte"):
        return {"field": path, "op": op, "value": draw(st.sampled_from(NUMBERS) | st.integers(-3, 3))}
    if op in ("in", "not_in"):
        return {"field": path, "op": op, "value": draw(st.lists(rule_scalars, min_size=1, max_size=3))}
    if op in ("before", "after"):
        return {"field": path, "op": op, "value": draw(st.sampled_from(DATES))}
    if op == "within_last":
        return {"field": path, "op": op, "value": draw(st.sampled_from(DURATIONS))}
    return {"field": path, "op": op}


@st.composite
def leaves(draw):
    kind = draw(
        st.sampled_from(
            ["json", "json", "json", "date", "string", "created", "sub", "segment", "points", "pool"]
        )
    )
    if kind == "date":
        op = draw(st.sampled_from(["before", "after", "within_last", "exists", "eq", "contains"]))
        return _json_leaf("customer.fields.d", op, draw)
    if kind == "json":
        op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists", "not_exists", "before", "after", "within_last"]))  # fmt: skip
        return _json_leaf(draw(json_paths), op, draw)
    if kind == "string":
        path = draw(st.sampled_from(["customer.email", "customer.first_name"]))
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "contains", "exists", "not_exists"]))
        words = st.sampled_from(["", "a@x.io", "x.io", "B@", "Ann", "ann", "nn", "An"])
        if op in ("in", "not_in"):
            return {"field": path, "op": op, "value": draw(st.lists(words, min_size=1, max_size=3))}
        if op in ("exists", "not_exists"):
            return {"field": path, "op": op}
        return {"field": path, "op": op, "value": draw(words)}
    if kind == "created":
        op = draw(st.sampled_from(["before", "after", "within_last", "exists", "not_exists"]))
        return _json_leaf("customer.created_at", op, draw)
    if kind == "sub":
        path = "subscription." + draw(st.sampled_from(CHANNELS))
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "exists", "not_exists"]))
        if op in ("in", "not_in"):
            return {"field": path, "op": op, "value": draw(st.lists(st.sampled_from(STATUSES), min_size=1))}
        if op in ("exists", "not_exists"):
            return {"field": path, "op": op}
        return {"field": path, "op": op, "value": draw(st.sampled_from(STATUSES))}
    if kind == "segment":
        op = draw(st.sampled_from(["in", "not_in"]))
        return {"field": "segment", "op": op, "value": draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3))}  # fmt: skip
    path = "points" if kind == "points" else draw(st.sampled_from(["promo_pool.p1.available", "promo_pool.none.available"]))  # fmt: skip
    op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in"]))
    numbers = st.sampled_from([0, 1, 2, 2.5, 10, 50, -5, 100.5])
    if op in ("in", "not_in"):
        return {"field": path, "op": op, "value": draw(st.lists(numbers, min_size=1, max_size=3))}
    return {"field": path, "op": op, "value": draw(numbers)}


rules = st.recursive(
    leaves(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda items: {"all": items}),
        st.lists(children, min_size=1, max_size=3).map(lambda items: {"any": items}),
        children.map(lambda item: {"not": item}),
    ),
    max_leaves=5,
)


def _create_population(people, free_codes):
    pool = PromoPool.objects.create(slug="p1", name="P1")
    PromoCode.objects.bulk_create(
        [
            PromoCode(pool=pool, code=f"C{index}", issued_at=NOW if index % 2 else None)
            for index in range(free_codes)
        ]
    )
    static = {slug: Segment.objects.create(slug=slug, name=slug) for slug in ("s1", "s2")}
    Segment.objects.create(
        slug="r1",
        name="r1",
        kind=Segment.Kind.RULE,
        rule={
            "any": [
                {"field": "points", "op": "gt", "value": 20},
                {"field": "segment", "op": "in", "value": ["s1"]},
            ]
        },
    )
    Segment.objects.create(
        slug="r2",
        name="r2",
        kind=Segment.Kind.RULE,
        rule={
            "all": [
                {"field": "segment", "op": "not_in", "value": ["r1"]},
                {"field": "customer.fields.a", "op": "exists"},
            ]
        },
    )
    expiries = {None: None, "past": NOW - timedelta(days=1), "now": NOW, "future": NOW + timedelta(seconds=1)}
    created = Customer.objects.bulk_create(
        [
            Customer(
                external_id=f"c{index}",
                email=person["email"],
                first_name=person["first_name"],
                created_at=person["created_at"],
                fields=person["fields"],
            )
            for index, person in enumerate(people)
        ]
    )
    ids = [customer.id for customer in created]  # both databases return the new ids
    Subscription.objects.bulk_create(
        Subscription(customer_id=ids[index], channel=channel, status=status)
        for index, person in enumerate(people)
        for channel, status in person["subscriptions"].items()
    )
    SegmentMembership.objects.bulk_create(
        SegmentMembership(segment=static[slug], customer_id=ids[index])
        for index, person in enumerate(people)
        for slug in person["static"]
    )
    PointsEntry.objects.bulk_create(
        PointsEntry(customer_id=ids[index], amount=amount, expires_at=expiries[expiry])
        for index, person in enumerate(people)
        for amount, expiry in person["points"]
    )
    return ids


@pytest.mark.django_db
@settings(
    max_examples=int(os.environ.get("RULES_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(customers, min_size=1, max_size=6),
    free_codes=st.integers(0, 4),
    rule_list=st.lists(rules, min_size=1, max_size=6),
)
def test_sql_and_python_select_the_same_customers(people, free_codes, rule_list):
    with time_machine.travel(NOW, tick=False), transaction.atomic():
        ids = _create_population(people, free_codes)
        for rule in rule_list:
            assert validate_rule(rule) == [], rule
            in_sql = set(Customer.objects.filter(to_q(rule)).values_list("id", flat=True))
            in_python = evaluate_many(rule, ids)
            assert in_sql == in_python, rule
        transaction.set_rollback(True)
