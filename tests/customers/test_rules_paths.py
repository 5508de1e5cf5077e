"""read_path: THE reader of a rule-language PATH in rows already loaded (the
customer row, the trigger event's payload). The cases of flows' old path
reader (dicts, missing keys, null) plus the rule language's own rules: a name
never indexes a list, an empty profile string is no value."""

from datetime import UTC, datetime

import pytest

from customers.rules import RuleError, parse_path, read_path

CREATED = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
CUSTOMER = {
    "id": 7,
    "email": "ada@example.com",
    "phone": "",
    "created_at": CREATED,
    "fields": {
        "birthday": "1990-04-02",
        "address": {"city": "Berlin", "zip": None},
        "orders": [{"date": "2024-01-01"}],
        "zero": 0,
        "no": False,
    },
}
PAYLOAD = {"order": {"total": 42.5, "placed": "2024-06-01T10:00:00Z"}, "items": ["a", "b"]}


@pytest.mark.parametrize(
    "path, expected",
    [
        ("customer.email", "ada@example.com"),
        ("customer.created_at", CREATED),
        ("customer.fields.birthday", "1990-04-02"),
        ("customer.fields.address.city", "Berlin"),
        ("customer.fields.address", {"city": "Berlin", "zip": None}),
        ("customer.fields.zero", 0),
        ("customer.fields.no", False),
        ("event.order.total", 42.5),
        ("event.order.placed", "2024-06-01T10:00:00Z"),
        ("event.items", ["a", "b"]),
    ],
)
def test_it_reads_the_value_at_a_path(path, expected):
    assert read_path(path, customer=CUSTOMER, event=PAYLOAD) == expected


@pytest.mark.parametrize(
    "path",
    [
        "customer.fields.missing",  # no such key
        "customer.fields.address.zip",  # null is no value
        "customer.fields.address.city.name",  # a string has no keys
        "customer.fields.birthday.year",
        "event.order.missing",
        "event.nothing.deeper",
        "customer.phone",  # an empty profile string is no value
    ],
)
def test_a_missing_or_null_value_is_none(path):
    assert read_path(path, customer=CUSTOMER, event=PAYLOAD) is None


@pytest.mark.parametrize("path", ["customer.fields.orders.0.date", "event.items.0", "event.items.1"])
def test_a_name_never_indexes_a_list(path):
    # As in SQL (customers/rules/sql.py) and in the predicate: a list index is no value.
    assert read_path(path, customer=CUSTOMER, event=PAYLOAD) is None


def test_without_rows_every_path_has_no_value():
    assert read_path("event.order.total", customer=CUSTOMER, event=None) is None
    assert read_path("customer.fields.birthday", customer=None, event=PAYLOAD) is None
    assert read_path("customer.email", customer=None, event=None) is None
    # A row whose fields are not an object (old data) has no custom fields.
    assert read_path("customer.fields.birthday", customer={"fields": "oops"}, event=None) is None


def test_it_takes_a_parsed_path():
    assert read_path(parse_path("event.order.total"), customer=None, event=PAYLOAD) == 42.5


@pytest.mark.parametrize("path", ["subscription.email", "segment", "points", "promo_pool.welcome.available"])
def test_paths_not_stored_in_the_rows_are_refused(path):
    with pytest.raises(RuleError, match="not read from a customer row or an event"):
        read_path(path, customer=CUSTOMER, event=PAYLOAD)


def test_a_path_that_does_not_parse_is_refused():
    with pytest.raises(RuleError, match="unknown customer field"):
        read_path("customer.nope", customer=CUSTOMER, event=PAYLOAD)
