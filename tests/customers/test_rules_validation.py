import pytest

from customers.rules import validate_rule


def leaf(field, op, value=None, **extra):
    node = {"field": field, "op": op, **extra}
    if value is not None:
        node["value"] = value
    return node


@pytest.mark.parametrize(
    "rule",
    [
        leaf("customer.email", "eq", "a@example.com"),
        leaf("customer.email", "contains", "@example"),
        leaf("customer.phone", "exists"),
        leaf("customer.created_at", "before", "2024-01-01"),
        leaf("customer.created_at", "within_last", "P30D"),
        leaf("customer.fields.tier", "in", ["gold", "silver"]),
        leaf("customer.fields.address.city", "eq", "Berlin"),
        leaf("customer.fields.age", "gte", 18),
        leaf("customer.fields.score", "lt", 2.5),
        leaf("customer.fields.vip", "eq", True),
        leaf("customer.fields.tags", "contains", 3),
        leaf("customer.fields.birthday", "after", "1990-05-01T12:00:00+02:00"),
        leaf("customer.fields.seen", "within_last", "PT12H"),
        leaf("event.total", "gt", 100),
        leaf("event.items.sku", "not_exists"),
        leaf("subscription.email", "eq", "requires_confirmation"),
        leaf("subscription.web_push", "in", ["subscribed", "unsubscribed"]),
        leaf("segment", "in", ["vip"]),
        leaf("segment", "not_in", ["churned", "test"]),
        leaf("points", "gte", 500),
        leaf("points", "exists"),
        leaf("promo_pool.summer-24.available", "gt", 0),
        {"all": [leaf("points", "gt", 0), {"not": leaf("segment", "in", ["x"])}]},
        {"any": [leaf("points", "gt", 0)]},
    ],
)
def test_it_accepts_valid_rules(rule):
    assert validate_rule(rule) == []


@pytest.mark.parametrize(
    ("rule", "path", "fragment"),
    [
        (None, "", "must be an object"),
        ([], "", "must be an object"),
        ({}, "field", "required"),
        ({"all": []}, "all", "non-empty list"),
        ({"any": "x"}, "any", "non-empty list"),
        ({"all": [leaf("points", "gt", 1)], "any": []}, "", "only key"),
        ({"not": 5}, "not", "must be an object"),
        (leaf("customer.nickname", "eq", "x"), "field", "unknown customer field"),
        (leaf("customer.fields", "eq", "x"), "field", "unknown customer field"),
        *[
            (leaf(f"customer.fields.{name}", "eq", "x"), "field", "names are letters")
            for name in ("a..b", 'a"b', "café")
        ],
        (leaf("address.city", "eq", "x"), "field", "unknown field"),
        (leaf(5, "eq", "x"), "field", "non-empty string"),
        (leaf("event", "eq", "x"), "field", "payload key"),
        (leaf("subscription.fax", "eq", "subscribed"), "field", "unknown subscription channel"),
        (leaf("subscription.email", "eq", "yes"), "value", "subscription status"),
        (leaf("segment.vip", "in", ["vip"]), "field", "no sub-field"),
        (leaf("segment", "eq", "vip"), "op", "does not support"),
        (leaf("segment", "in", "vip"), "value", "non-empty list"),
        (leaf("segment", "in", []), "value", "non-empty list"),
        (leaf("segment", "in", ["vip", 3]), "value", "segment slugs"),
        (leaf("points.total", "gt", 1), "field", "no sub-field"),
        (leaf("points", "gt", "10"), "value", "needs a number"),
        (leaf("points", "gt", True), "value", "needs a number"),
        (leaf("points", "gt", 2**60), "value", "2**53"),
        (leaf("points", "contains", 1), "op", "does not support"),
        (leaf("promo_pool.summer", "gt", 1), "field", "promo_pool.<slug>.available"),
        (leaf("promo_pool.summer.left", "gt", 1), "field", "promo_pool.<slug>.available"),
        (leaf("customer.fields.age", "like", 1), "op", "unknown op"),
        (leaf("customer.fields.age", "gt"), "value", "needs a value"),
        (leaf("customer.fields.age", "gt", float("nan")), "value", "finite"),
        (leaf("customer.fields.age", "eq", None), "value", "needs a value"),
        (leaf("customer.fields.age", "eq", [1]), "value", "string, number or boolean"),
        (leaf("customer.fields.age", "eq", {"a": 1}), "value", "string, number or boolean"),
        (leaf("customer.fields.tags", "contains", [1]), "value", "contains needs"),
        (leaf("customer.fields.tier", "in", [["gold"]]), "value", "list item"),
        *[
            (leaf("customer.fields.d", op, value), "value", "ISO date")
            for op, value in (("before", "2024-02-30"), ("before", "yesterday"), ("after", 20240101))
        ],
        *[
            (leaf("customer.fields.d", "within_last", value), "value", "duration")
            for value in ("-P1D", "P1.5D", 7, "+P1D", "PT0.5S", " P1D", "P")
        ],
        (leaf("customer.fields.d", "within_last", "P99999999999D"), "value", "at most 100 years"),
        (leaf("customer.created_at", "within_last", "P101Y"), "value", "at most 100 years"),
        (leaf("customer.fields.tier", "eq", "gold\ud800"), "value", "valid Unicode"),
        (leaf("customer.fields.tier", "in", ["gold", "\udfff"]), "value", "valid Unicode"),
        (leaf("event.name", "contains", "\ud800"), "value", "valid Unicode"),
        (leaf("customer.fields.tier", "eq", "a\x00"), "value", "NUL"),
        (leaf("customer.email", "gt", 1), "op", "does not support"),
        (leaf("customer.email", "eq", 1), "value", "compares with strings"),
        (leaf("customer.created_at", "eq", "2024-01-01"), "op", "does not support"),
        (leaf("points", "gt", 1, extra=1), "extra", "unknown key"),
    ],
)
def test_it_reports_bad_rules_with_their_path(rule, path, fragment):
    errors = validate_rule(rule)
    assert errors, rule
    paths = [where for where, _ in errors]
    assert path in paths, errors
    assert any(fragment in message for where, message in errors if where == path), errors


def test_it_points_at_the_nested_offender():
    rule = {
        "all": [
            leaf("points", "gt", 1),
            {"any": [leaf("customer.email", "exists"), {"not": leaf("customer.fields.x", "in", 3)}]},
        ]
    }
    assert validate_rule(rule) == [("all.1.any.1.not.value", "op 'in' needs a non-empty list")]


def test_it_reports_every_problem():
    rule = {"all": [leaf("nope", "eq", 1), leaf("points", "zz", 1), leaf("points", "gt", "x")]}
    assert [where for where, _ in validate_rule(rule)] == ["all.0.field", "all.1.op", "all.2.value"]


def test_it_limits_nesting_depth():
    rule = leaf("points", "gt", 1)
    for _ in range(9):
        rule = {"not": rule}
    assert validate_rule(rule) == []  # ten levels
    too_deep = {"all": [rule]}
    errors = validate_rule(too_deep)
    assert len(errors) == 1
    assert errors[0][0] == "all.0." + ".".join(["not"] * 9)
    assert "10 levels" in errors[0][1]


def test_it_refuses_event_paths_when_told_there_is_no_event():
    rule = {"any": [leaf("event.total", "gt", 1), leaf("points", "gt", 1)]}
    assert validate_rule(rule) == []
    assert [where for where, _ in validate_rule(rule, allow_event=False)] == ["any.0.field"]


@pytest.mark.parametrize(
    "rule",
    [object(), {"all": [None, 3, "x"]}, {1: 2}, {"field": ["a"], "op": {}, "value": set()}, {"not": []}],
)
def test_it_never_raises_on_garbage(rule):
    assert validate_rule(rule)


def test_presence_ops_ignore_the_value():
    assert validate_rule(leaf("customer.fields.x", "exists", {"whatever": 1})) == []
