"""The Python predicate and the SQL Q must select the same customers, on the
database the suite runs on (CI runs it on PostgreSQL, locally SQLite too)."""

import contextlib
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import Customer, Event, PointsEntry, Segment, SegmentMembership, Subscription
from customers.rules import evaluate_many, parse_moment, to_q, validate_rule
from tests.customers.kit import promo_pool
from tests.flows.document_strategies import rules_of

NOW = datetime(2024, 6, 15, 12, 0, 0, 250000, tzinfo=UTC)

KEYS = ["a", "b-2"]
# "é" is stored but not addressable by a rule path (ASCII names only).
DATA_KEYS = [*KEYS, "d", "é"]
# Small pools on purpose: values of different JSON types that print alike
# ("5", 5, 5.0; true, 1) must meet often.
STRINGS = ["", "5", "1", "abc", "ABC", "bc", "a%b", "ü"]
NUMBERS = [0, 1, 5, 5.0, 2.5, -0.5, 0.1, 0.30000000000000004, 1e-7, 2**53]
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
EVENT_TYPES = ["order_created", "page_view", "never_seen"]

scalars = st.one_of(
    st.sampled_from(STRINGS),
    st.sampled_from(NUMBERS),
    st.booleans(),
    st.none(),
    st.sampled_from(DATES + NOT_DATES),
)
nested = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(DATA_KEYS), children, max_size=3)
    ),
    max_leaves=6,
)
# Mostly scalars, so that rules meet values of every type often.
json_values = st.one_of(scalars, scalars, nested)
absent = st.just(None).map(lambda _: _ABSENT)
_ABSENT = object()


def _drop_absent(fields):
    return {key: value for key, value in fields.items() if value is not _ABSENT}


# Each addressable key present more often than not; "d" mostly holds date-like
# strings because most rules on it are date ops.
fields_strategy = st.fixed_dictionaries(
    {
        "a": st.one_of(json_values, absent),
        "b-2": st.one_of(json_values, absent),
        "d": st.one_of(st.sampled_from(DATES + NOT_DATES), scalars, absent),
        "é": st.one_of(scalars, absent, absent),
    }
).map(_drop_absent)


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
        "fields": fields_strategy,
        "subscriptions": st.dictionaries(st.sampled_from(CHANNELS), st.sampled_from(STATUSES)),
        "static": st.sets(st.sampled_from(["s1", "s2"])),
        "points": st.lists(
            st.tuples(st.integers(-50, 100), st.sampled_from([None, "past", "now", "future"])), max_size=3
        ),
        # Event history: (type, occurred_at, payload); a moment after NOW must never count.
        "events": st.lists(
            st.tuples(
                st.sampled_from(EVENT_TYPES[:2]),
                st.one_of(moments, st.just(NOW + timedelta(seconds=1))),
                fields_strategy,
            ),
            max_size=4,
        ),
    }
)


def _twins(value):
    """`value` and look-alikes of other JSON types: the pairs that a type-loose
    implementation would confuse."""
    if isinstance(value, bool):
        return [value, int(value), "true" if value else "false"]
    if isinstance(value, int | float):
        twins = [value, float(value), str(value)]
        if float(value).is_integer() and abs(value) < 2**53:
            twins += [int(value), str(int(value))]
        if value in (0, 1):
            twins.append(bool(value))
        return twins
    if isinstance(value, str):
        twins = [value, value.upper(), value[1:]]
        with contextlib.suppress(ValueError):
            twins.append(float(value))
        return twins
    if isinstance(value, list):
        return [twin for item in value for twin in _twins(item)]
    return []


def _paths_and_values(people):
    """{path: [values seen there]} for every object key path (up to two levels)
    in the population's fields that a rule can name."""
    found = {f"customer.fields.{key}": [] for key in [*KEYS, "d"]}
    for person in people:
        for key, value in person["fields"].items():
            if key not in KEYS and key != "d":
                continue
            found[f"customer.fields.{key}"].append(value)
            if isinstance(value, dict):
                for inner_key, inner in value.items():
                    if inner_key in KEYS:
                        found.setdefault(f"customer.fields.{key}.{inner_key}", []).append(inner)
    return found


def _usable(value):
    return not (isinstance(value, float) and not float("-inf") < value < float("inf")) and not (
        isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > 2**53
    )


@st.composite
def _json_leaf(draw, paths):
    populated = sorted(path for path, values in paths.items() if values)
    everywhere = st.sampled_from(sorted(paths))
    path = draw(st.one_of(st.sampled_from(populated), everywhere) if populated else everywhere)
    seen = [twin for value in paths[path] for twin in _twins(value) if _usable(twin)]
    scalars_here = (
        st.one_of(st.sampled_from(seen), st.sampled_from(seen), rule_scalars) if seen else rule_scalars
    )
    numbers_here = [value for value in seen if isinstance(value, int | float) and not isinstance(value, bool)]
    numbers = st.one_of(st.sampled_from(numbers_here), st.sampled_from(NUMBERS)) if numbers_here else st.sampled_from(NUMBERS)  # fmt: skip
    dates_here = [value for value in seen if parse_moment(value) is not None]
    dates = st.one_of(st.sampled_from(dates_here), st.sampled_from(DATES)) if dates_here else st.sampled_from(DATES)  # fmt: skip
    # The type-sensitive ops twice as often.
    op = draw(st.sampled_from(["eq", "eq", "ne", "in", "in", "not_in", "contains", "contains", "gt", "gte", "lt", "lte", "exists", "not_exists", "before", "after", "within_last"]))  # fmt: skip
    return _leaf_with_value(path, op, draw, scalars_here, numbers, dates)


rule_scalars = st.one_of(
    st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans(), st.sampled_from(DATES)
)


def _leaf_with_value(path, op, draw, scalars_here, numbers, dates):
    if op in ("eq", "ne", "contains"):
        return {"field": path, "op": op, "value": draw(scalars_here)}
    if op in ("gt", "gte", "lt", "lte"):
        return {"field": path, "op": op, "value": draw(numbers)}
    if op in ("in", "not_in"):
        return {"field": path, "op": op, "value": draw(st.lists(scalars_here, min_size=1, max_size=3))}
    if op in ("before", "after"):
        return {"field": path, "op": op, "value": draw(dates)}
    if op == "within_last":
        return {"field": path, "op": op, "value": draw(st.sampled_from(DURATIONS))}
    return {"field": path, "op": op}


@st.composite
def _other_leaf(draw):
    kind = draw(st.sampled_from(["string", "created", "sub", "segment", "points", "pool"]))
    if kind == "string":
        path = draw(st.sampled_from(["customer.email", "customer.first_name"]))
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "contains", "exists", "not_exists"]))
        words = st.sampled_from(["", "a@x.io", "x.io", "B@", "Ann", "ann", "nn", "An"])
        return _leaf_with_value(path, op, draw, words, None, None)
    if kind == "created":
        op = draw(st.sampled_from(["before", "after", "within_last", "exists", "not_exists"]))
        return _leaf_with_value("customer.created_at", op, draw, None, None, st.sampled_from(DATES))
    if kind == "sub":
        path = "subscription." + draw(st.sampled_from(CHANNELS))
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "exists", "not_exists"]))
        return _leaf_with_value(path, op, draw, st.sampled_from(STATUSES), None, None)
    if kind == "segment":
        op = draw(st.sampled_from(["in", "not_in"]))
        return {"field": "segment", "op": op, "value": draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3))}  # fmt: skip
    path = "points" if kind == "points" else draw(st.sampled_from(["promo_pool.p1.available", "promo_pool.none.available"]))  # fmt: skip
    op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "not_exists"]))
    numbers = st.sampled_from([0, 1, 2, 2.5, 10, 50, -5, 100.5])
    return _leaf_with_value(path, op, draw, numbers, numbers, None)


@st.composite
def _date_leaf(draw, paths):
    # Moment ops on the key that mostly holds date-like strings (see fields_strategy).
    op = draw(st.sampled_from(["before", "after", "within_last"]))
    dates = [value for value in paths["customer.fields.d"] if parse_moment(value) is not None]
    bounds = st.one_of(st.sampled_from(dates), st.sampled_from(DATES)) if dates else st.sampled_from(DATES)
    return _leaf_with_value("customer.fields.d", op, draw, None, None, bounds)


def _event_paths(people):
    """{event.<key>: [values seen in the payloads]}, like _paths_and_values."""
    found = {f"event.{key}": [] for key in [*KEYS, "d"]}
    for person in people:
        for _type, _moment, payload in person["events"]:
            for key, value in payload.items():
                if key in found or f"event.{key}" in found:
                    found[f"event.{key}"].append(value)
    return found


@st.composite
def _event_leaf(draw, event_paths):
    where_leaves = _json_leaf(event_paths)
    where = st.one_of(
        st.none(),
        where_leaves,
        where_leaves.map(lambda leaf: {"not": leaf}),
        st.lists(where_leaves, min_size=1, max_size=2).map(lambda items: {"any": items}),
    )
    op = draw(st.sampled_from(["count_gte", "count_lte", "count_eq", "exists", "not_exists"]))
    leaf = {
        "event": draw(st.sampled_from(EVENT_TYPES)),
        "where": draw(where),
        "within": draw(st.one_of(st.none(), st.sampled_from(DURATIONS))),
        "op": op,
    }
    if op.startswith("count_"):
        leaf["value"] = draw(st.integers(0, 3))
    return leaf


def rules_for(people):
    paths = _paths_and_values(people)
    leaves = st.one_of(
        _json_leaf(paths),
        _json_leaf(paths),
        _date_leaf(paths),
        _other_leaf(),
        _event_leaf(_event_paths(people)),
    )
    return rules_of(leaves, max_leaves=5)


def _subrules(rule):
    yield rule
    if "event" in rule:  # a where is checked through its leaf (it reads the counted events)
        return
    for child in rule.get("all") or rule.get("any") or ([rule["not"]] if "not" in rule else []):
        yield from _subrules(child)


def _create_population(people, free_codes):
    promo_pool("p1", *(NOW if index % 2 else None for index in range(free_codes)))
    static = {slug: Segment.objects.create(slug=slug, name=slug) for slug in ("s1", "s2")}
    r1 = {
        "any": [
            {"field": "points", "op": "gt", "value": 20},
            {"field": "segment", "op": "in", "value": ["s1"]},
        ]
    }
    r2 = {
        "all": [
            {"field": "segment", "op": "not_in", "value": ["r1"]},
            {"field": "customer.fields.a", "op": "exists"},
        ]
    }
    for slug, rule in (("r1", r1), ("r2", r2)):
        Segment.objects.create(slug=slug, name=slug, kind=Segment.Kind.RULE, rule=rule)
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
    Event.objects.bulk_create(
        Event(customer_id=ids[index], type=event_type, occurred_at=moment, payload=payload)
        for index, person in enumerate(people)
        for event_type, moment, payload in person["events"]
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
    data=st.data(),
)
def test_sql_and_python_select_the_same_customers(people, free_codes, data):
    rule_list = data.draw(st.lists(rules_for(people), min_size=1, max_size=10), label="rules")
    with time_machine.travel(NOW, tick=False), transaction.atomic():
        ids = _create_population(people, free_codes)
        # Every sub-rule too: a disagreement in a leaf can be masked by its parents.
        checked = {}
        for rule in rule_list:
            for part in _subrules(rule):
                checked.setdefault(json.dumps(part, sort_keys=True), part)
        for rule in checked.values():
            assert validate_rule(rule) == [], rule
            in_sql = set(Customer.objects.filter(to_q(rule)).values_list("id", flat=True))
            in_python = evaluate_many(rule, ids)
            assert in_sql == in_python, rule
        transaction.set_rollback(True)
