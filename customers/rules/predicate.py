"""A rule compiled to a Python predicate over one customer's `RuleFacts`
(loaded in a batch by customers/rules/facts.py). It must agree row for row
with the SQL form (customers/rules/sql.py); the property test compares them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from customers.rules.paths import (
    NEGATED,
    NUMERIC_OPS,
    is_number,
    parse_duration,
    parse_moment,
    parse_path,
    read_keys,
    truncate,
    within_bounds,
)
from customers.rules.validate import require_valid


@dataclass
class RuleFacts:
    """What one customer's rule evaluation may look at, loaded in a batch."""

    customer: dict[str, Any] = field(default_factory=dict)  # attr -> value
    fields: dict[str, Any] = field(default_factory=dict)
    event: dict[str, Any] | None = None  # trigger event payload
    subscriptions: dict[str, str] = field(default_factory=dict)  # channel -> status
    segments: set[str] = field(default_factory=set)  # slugs the customer is a member of
    points: int = 0
    pool_available: dict[str, int] = field(default_factory=dict)  # pool slug -> free codes
    # Event history: type -> [(occurred_at truncated to the second, payload)],
    # the events of the types the rule counts, loaded for the window it needs.
    history: dict[str, list[tuple[datetime, Any]]] = field(default_factory=dict)
    # The evaluation time of event-history leaves (a run's clock in flows);
    # None: the `now` the predicate is called with.
    clock: datetime | None = None


_MISSING = object()
Predicate = Callable[[RuleFacts, datetime], bool]


def _json_eq(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and actual is expected
    if is_number(expected):
        return is_number(actual) and actual == expected
    return isinstance(actual, str) and isinstance(expected, str) and actual == expected


def _moment_of(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return truncate(value)
    return parse_moment(value)


def _apply(op: str, actual: Any, expected: Any, now: datetime) -> bool:
    """One op on one value (`_MISSING` when there is none), JSON semantics."""
    if op in NEGATED:
        return not _apply(NEGATED[op], actual, expected, now)
    if actual is _MISSING:
        return False
    if op == "exists":
        return True
    if op == "eq":
        return _json_eq(actual, expected)
    if op == "in":
        return any(_json_eq(actual, item) for item in expected)
    if op in NUMERIC_OPS:
        if not is_number(actual):
            return False
        return {
            "gt": actual > expected,
            "gte": actual >= expected,
            "lt": actual < expected,
            "lte": actual <= expected,
        }[op]
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(expected, str) and expected in actual
        return isinstance(actual, list) and any(_json_eq(item, expected) for item in actual)
    moment = _moment_of(actual)
    if moment is None:
        return False
    if op == "before":
        return moment < parse_moment(expected)
    if op == "after":
        return moment > parse_moment(expected)
    low, high = within_bounds(parse_duration(expected), now)  # within_last
    return low <= moment <= high


def _compile_leaf(node: dict) -> Predicate:
    path = parse_path(node["field"])
    op, expected = node["op"], node.get("value")
    if path.kind == "string_attr":
        name = path.name
        # An empty profile string is "not filled in".
        if op == "exists":
            return lambda facts, now: (facts.customer.get(name) or "") != ""
        if op == "not_exists":
            return lambda facts, now: (facts.customer.get(name) or "") == ""
        return lambda facts, now: _apply(op, facts.customer.get(name) or "", expected, now)
    if path.kind == "datetime_attr":
        name = path.name
        return lambda facts, now: _apply(op, _or_missing(facts.customer.get(name)), expected, now)
    # eq on a text value (the usual condition, tier = "gold") is _apply's eq
    # without the calls: only equal text matches; no value, a number or a bool does not.
    text_eq = op == "eq" and isinstance(expected, str)
    if path.source == "fields":
        keys = path.keys
        if text_eq:
            return lambda facts, now: isinstance(v := read_keys(facts.fields, keys), str) and v == expected
        return lambda facts, now: _apply(op, _or_missing(read_keys(facts.fields, keys)), expected, now)
    if path.source == "event":
        keys = path.keys
        if text_eq:
            return lambda facts, now: isinstance(v := read_keys(facts.event, keys), str) and v == expected
        return lambda facts, now: _apply(op, _or_missing(read_keys(facts.event, keys)), expected, now)
    if path.kind == "subscription":
        channel = path.name
        return lambda facts, now: _apply(op, _or_missing(facts.subscriptions.get(channel)), expected, now)
    if path.kind == "segment":
        slugs = frozenset(expected)
        if op == "in":
            return lambda facts, now: not slugs.isdisjoint(facts.segments)
        return lambda facts, now: slugs.isdisjoint(facts.segments)
    if path.source == "points":
        return lambda facts, now: _apply(op, facts.points, expected, now)
    slug = path.name  # promo_pool
    return lambda facts, now: _apply(op, facts.pool_available.get(slug, 0), expected, now)


def _or_missing(value: Any) -> Any:
    return _MISSING if value is None else value


def _compile_event_leaf(node: dict) -> Predicate:
    """Count the customer's events of one type inside [clock - within, clock]
    (one-second precision, both ends inclusive; no `within`: every event up to
    the clock) that match `where`, then compare the count."""
    event_type, op = node["event"], node["op"]
    expected = node.get("value")
    within = parse_duration(node["within"]) if node.get("within") is not None else None
    where = _compile_node(node["where"]) if node.get("where") is not None else None
    # How many matches decide the answer: counting stops there.
    enough = {"exists": 1, "not_exists": 1, "count_gte": expected}.get(op)
    if enough is None:
        enough = expected + 1  # count_lte, count_eq: one more than the value says no

    def count(facts: RuleFacts, now: datetime) -> int:
        at = facts.clock or now
        low, high = within_bounds(within, at) if within is not None else (None, truncate(at))
        found = 0
        for moment, payload in facts.history.get(event_type, ()):
            if moment > high or (low is not None and moment < low):
                continue
            if where is not None and not where(RuleFacts(event=payload), at):
                continue
            found += 1
            if found >= enough:
                break
        return found

    if op == "exists":
        return lambda facts, now: count(facts, now) >= 1
    if op == "not_exists":
        return lambda facts, now: count(facts, now) == 0
    if op == "count_gte":
        return lambda facts, now: count(facts, now) >= expected
    if op == "count_lte":
        return lambda facts, now: count(facts, now) <= expected
    return lambda facts, now: count(facts, now) == expected


def _compile_node(node: dict) -> Predicate:
    if "all" in node:
        parts = [_compile_node(child) for child in node["all"]]
        return lambda facts, now: all(part(facts, now) for part in parts)
    if "any" in node:
        parts = [_compile_node(child) for child in node["any"]]
        return lambda facts, now: any(part(facts, now) for part in parts)
    if "not" in node:
        inner = _compile_node(node["not"])
        return lambda facts, now: not inner(facts, now)
    if "event" in node:
        return _compile_event_leaf(node)
    return _compile_leaf(node)


def compile_predicate(rule: Any, *, allow_event: bool = True) -> Predicate:
    """Validate once, then return `predicate(facts, now) -> bool` for many customers."""
    require_valid(rule, allow_event=allow_event)
    return _compile_node(rule)


def evaluate(rule: Any, facts: RuleFacts) -> bool:
    """Does one customer's loaded facts match `rule`? Raises RuleError on an invalid rule.
    `facts.segments` must already hold the segments the customer belongs to
    (see `load_facts`)."""
    return compile_predicate(rule)(facts, timezone.now())
