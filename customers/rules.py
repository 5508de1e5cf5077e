"""The rule language shared by segments, start filters, conditions and audiences.

A rule is JSON::

    {"all": [RULE, ...]}      every sub-rule matches (non-empty list)
    {"any": [RULE, ...]}      at least one sub-rule matches (non-empty list)
    {"not": RULE}             the sub-rule does not match
    {"field": PATH, "op": OP, "value": V}

Nesting is limited to 10 levels (a lone leaf is level 1).

One rule has two implementations that must agree row for row: `evaluate()` on
facts loaded in Python (`load_facts`) and `to_q()`, a `Q` for a `Customer`
queryset, on SQLite and on PostgreSQL. tests/customers/test_rules_property.py
compares them on random data on both databases. The semantics below were chosen
so that all three can implement them exactly.

Paths
-----
``customer.<attr>``
    external_id, email, phone, first_name, last_name, timezone (strings, never
    null) and created_at (a datetime). An empty string counts as "no value" for
    exists/not_exists only; eq "" matches an empty attribute.
``customer.fields.<name>[.<name>...]``
    The customer's JSON custom fields; dotted names walk nested objects
    (``customer.fields.address.city``). Names are ASCII letters, digits, ``_`` and
    ``-`` (Django stores other characters \\u-escaped, and SQLite's JSON paths
    would not find them). A name never indexes into an array.
``event.<name>[.<name>...]``
    The payload of the trigger event, same rules as custom fields. Only the
    payload: the event's type and time are not paths. Without a trigger event
    (a schedule audience, a segment) every event path has no value, and
    `to_q()` refuses event paths with `RuleError`.
``subscription.<channel>``
    email, sms, mobile_push, web_push, webhook. The value is the status
    (subscribed, requires_confirmation, unsubscribed); a customer without a
    subscription row for the channel has no value.
``segment``
    Only ops ``in``/``not_in`` with a list of segment slugs: ``in`` matches a
    member of any of them, ``not_in`` a member of none. Static segments by
    membership rows, rule segments by evaluating their rule (recursively; a
    segment that refers back to itself raises `RuleError`). Unknown slugs have
    no members. Segment rules are evaluated without the trigger event.
``points``
    The current balance: the sum of entries that never expire or expire after
    now. Always has a value (0 without entries), so it always exists.
``promo_pool.<slug>.available``
    The number of codes of the pool not yet issued (0 for an unknown pool).

Values and types (type-strict)
------------------------------
JSON values keep their type: the number 5 equals 5 and 5.0 but never the
string "5" nor ``true``; the string "5" equals only "5". Strings compare
case-sensitively, byte for byte. JSON ``null`` and a missing key are the same
thing: "no value".

- ``eq V`` / ``ne V``: V is a string, number or boolean. ``eq`` needs a value of
  the same type equal to V; ``ne`` is exactly ``not eq``, so a missing value
  satisfies ``ne``.
- ``gt gte lt lte V``: V is a number; only numeric values compare (a string
  "10" is not greater than 5). Bounds are inclusive for gte/lte.
- ``in LIST`` / ``not_in LIST``: a non-empty list of strings/numbers/booleans;
  ``in`` is ``eq`` with any element, ``not_in`` is ``not in``.
- ``contains V``: a string value containing V as a substring (case-sensitive),
  or a JSON array with an element ``eq`` V. Anything else does not match.
- ``exists`` / ``not_exists``: the value is present and not null (for customer
  string attributes: not empty). ``value`` is ignored and may be left out.
- ``before V`` / ``after V``: V is an ISO date or date-time string. The field
  is a datetime column or a JSON string in the same format; anything else does
  not match. Comparisons are on UTC instants at one-second precision
  (fractions of a second are dropped).
- ``within_last D``: D is a non-negative ISO 8601 duration (``P7D``,
  ``PT12H``, ``P1M``) of at most 100 years; matches when the field's moment lies in
  [now - D, now] (both ends inclusive, one-second precision; months and years
  counted on the UTC calendar). ``now`` is `django.utils.timezone.now()`.

Date strings (values and stored fields)::

    YYYY-MM-DD                                   midnight UTC
    YYYY-MM-DD[T| ]HH:MM[:SS[.ffffff]][Z|±HH:MM]  no offset means UTC

Years 1000-2999, real calendar days only (2023-02-30 is not a date), offsets
up to ±14:59. A string that is not in this form is not a date.

Numbers in rule values are limited to ±2**53 so that Python floats, SQLite
reals and PostgreSQL numerics order them identically.

API
---
`validate_rule(rule, allow_event=True)` lists problems; `load_facts` loads a
batch, `compile_predicate(rule)` validates once and returns a predicate over
`RuleFacts` (what a batch should use), `evaluate` / `evaluate_many` are the
one-shot forms; `to_q`, `segment_q` and `segment_customer_ids_queryset` select in
SQL; `value_at` reads one path for a condition's branches. Errors: `RuleError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import BooleanField, Exists, Expression, F, OuterRef, Q, QuerySet
from django.utils import timezone

from customers import selectors
from customers.errors import RuleError
from customers.models import Customer, Segment, SegmentMembership, Subscription
from maestra import durations, sql
from maestra.durations import Duration
from maestra.jsonvalues import text_problem

MAX_DEPTH = 10
MAX_NUMBER = 2**53

CUSTOMER_STRING_ATTRS = ("external_id", "email", "phone", "first_name", "last_name", "timezone")
CUSTOMER_DATETIME_ATTRS = ("created_at",)
CHANNELS = ("email", "sms", "mobile_push", "web_push", "webhook")
SUBSCRIPTION_STATUSES = ("subscribed", "requires_confirmation", "unsubscribed")

OPS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "exists",
    "not_exists",
    "before",
    "after",
    "within_last",
)
NUMERIC_OPS = ("gt", "gte", "lt", "lte")
LIST_OPS = ("in", "not_in")
PRESENCE_OPS = ("exists", "not_exists")
MOMENT_OPS = ("before", "after")

# Which ops each kind of path accepts (validation; evaluation relies on it).
_OPS_BY_KIND = {
    "string_attr": ("eq", "ne", "in", "not_in", "contains", "exists", "not_exists"),
    "datetime_attr": ("before", "after", "within_last", "exists", "not_exists"),
    "json": OPS,
    "subscription": ("eq", "ne", "in", "not_in", "exists", "not_exists"),
    "segment": LIST_OPS,
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "not_exists"),
}

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")

# The one accepted date form. \A and \Z mean the same in Python's re (SQLite's
# REGEXP is Python's re.search, registered by Django) and in PostgreSQL's ARE.
DATE_PATTERN = (
    r"\A[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?)?\Z"
)
_DATE_RE = re.compile(DATE_PATTERN)


# --- paths -----------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """A parsed PATH. `kind` decides which ops and values are valid."""

    kind: str  # string_attr | datetime_attr | json | subscription | segment | number
    source: str  # customer | fields | event | subscription | segment | points | promo_pool
    name: str = ""  # attribute, channel or pool slug
    keys: tuple[str, ...] = ()  # JSON keys for fields/event


def parse_path(text: Any) -> Path:
    """Parse a PATH string. Raises RuleError with a readable message."""
    if not isinstance(text, str) or not text:
        raise RuleError("field must be a non-empty string")
    parts = text.split(".")
    head = parts[0]
    if head == "customer":
        if len(parts) == 2 and parts[1] in CUSTOMER_STRING_ATTRS:
            return Path("string_attr", "customer", parts[1])
        if len(parts) == 2 and parts[1] in CUSTOMER_DATETIME_ATTRS:
            return Path("datetime_attr", "customer", parts[1])
        if len(parts) >= 3 and parts[1] == "fields":
            return Path("json", "fields", keys=_json_keys(parts[2:], text))
        attrs = ", ".join((*CUSTOMER_STRING_ATTRS, *CUSTOMER_DATETIME_ATTRS))
        raise RuleError(f"unknown customer field {text!r}: use customer.fields.<name> or one of {attrs}")
    if head == "event":
        if len(parts) < 2:
            raise RuleError("event paths name a payload key: event.<name>")
        return Path("json", "event", keys=_json_keys(parts[1:], text))
    if head == "subscription":
        if len(parts) != 2 or parts[1] not in CHANNELS:
            raise RuleError(f"unknown subscription channel in {text!r}: use one of {', '.join(CHANNELS)}")
        return Path("subscription", "subscription", parts[1])
    if head == "segment":
        if len(parts) != 1:
            raise RuleError("the segment path takes no sub-field: use field 'segment' with in/not_in")
        return Path("segment", "segment")
    if head == "points":
        if len(parts) != 1:
            raise RuleError("the points path takes no sub-field")
        return Path("number", "points")
    if head == "promo_pool":
        if len(parts) != 3 or parts[2] != "available" or not _SLUG.match(parts[1]):
            raise RuleError(f"{text!r}: promo pool paths are promo_pool.<slug>.available")
        return Path("number", "promo_pool", parts[1])
    raise RuleError(
        f"unknown field {text!r}: paths start with customer., event., subscription., "
        "promo_pool. or are segment or points"
    )


def _json_keys(names: list[str], text: str) -> tuple[str, ...]:
    for name in names:
        if not _NAME.match(name):
            raise RuleError(f"{text!r}: names are letters, digits, '_' or '-', separated by dots")
    return tuple(names)


# --- values ----------------------------------------------------------------


def is_number(value: Any) -> bool:
    # bool is an int subclass in Python; JSON keeps them apart, so do we.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or is_number(value)


def parse_moment(text: Any) -> datetime | None:
    """A date string in the accepted form as an aware UTC datetime truncated to
    the second, or None when it is not one."""
    if not isinstance(text, str) or not _DATE_RE.search(text):
        return None
    try:
        year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
        hour = minute = second = 0
        offset = timedelta(0)
        if len(text) > 10:
            hour, minute = int(text[11:13]), int(text[14:16])
            rest = text[16:]
            if rest.startswith(":"):
                second = int(rest[1:3])
                rest = rest[3:]
                if rest.startswith("."):
                    rest = rest.lstrip(".0123456789")
            if rest and rest != "Z":
                offset = timedelta(hours=int(rest[1:3]), minutes=int(rest[4:6]))
                if rest[0] == "-":
                    offset = -offset
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # not a calendar day (2023-02-30)
        return None
    return moment - offset


def parse_duration(text: Any) -> Duration:
    """A non-negative ISO 8601 duration (maestra/durations.py) without
    fractions, as `within_last` takes it. Raises RuleError."""
    problem = f"{text!r} is not a non-negative ISO 8601 duration such as P7D, PT12H or P1M"
    try:
        duration = durations.parse_duration(text)
    except ValueError as error:
        # Longer than 100 years: now - D would leave the calendar.
        raise RuleError(durations.TOO_LONG if str(error) == durations.TOO_LONG else problem) from None
    # Stricter than the flows' durations: no sign, no fraction, no spaces.
    if not text.startswith("P") or text.strip() != text or duration.seconds != int(duration.seconds):
        raise RuleError(problem)
    return duration


def _ago(duration: Duration, moment: datetime) -> datetime:
    """`moment` minus `duration`, calendar parts included (in UTC)."""
    return moment - duration.calendar_part - duration.exact_part


# --- validation ------------------------------------------------------------


def validate_rule(rule: Any, *, allow_event: bool = True) -> list[tuple[str, str]]:
    """Problems in `rule` as (dotted path inside the rule, message); empty when
    the rule is valid. Never raises. Whether segments and pools exist is not
    checked here. Segment rules should pass allow_event=False: they are
    evaluated without a trigger event."""
    errors: list[tuple[str, str]] = []
    _validate_node(rule, "", 1, errors, allow_event)
    return errors


def _join(prefix: str, name: str | int) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _validate_node(node: Any, at: str, depth: int, errors: list, allow_event: bool) -> None:
    if depth > MAX_DEPTH:
        errors.append((at, f"rules nest at most {MAX_DEPTH} levels deep"))
        return
    if not isinstance(node, dict):
        errors.append((at, "a rule must be an object with all, any, not or field/op/value"))
        return
    combinators = [key for key in ("all", "any", "not") if key in node]
    if combinators:
        if len(node) != 1:
            errors.append((at, f"{combinators[0]!r} must be the only key of its object"))
            return
        key = combinators[0]
        inner = node[key]
        if key == "not":
            _validate_node(inner, _join(at, "not"), depth + 1, errors, allow_event)
            return
        if not isinstance(inner, list) or not inner:
            errors.append((_join(at, key), f"{key!r} needs a non-empty list of rules"))
            return
        for index, child in enumerate(inner):
            _validate_node(child, _join(_join(at, key), index), depth + 1, errors, allow_event)
        return
    _validate_leaf(node, at, errors, allow_event)


def _validate_leaf(node: dict, at: str, errors: list, allow_event: bool) -> None:
    unknown = sorted(str(key) for key in node if key not in ("field", "op", "value"))
    if unknown:
        errors.append((_join(at, unknown[0]), f"unknown key {unknown[0]!r} (use field, op, value)"))
    if "field" not in node:
        errors.append((_join(at, "field"), "field is required"))
        return
    try:
        path = parse_path(node["field"])
    except RuleError as exc:
        errors.append((_join(at, "field"), str(exc)))
        return
    if path.source == "event" and not allow_event:
        errors.append((_join(at, "field"), "event fields are not available here (no trigger event)"))
        return
    op = node.get("op")
    if op not in OPS:
        errors.append((_join(at, "op"), f"unknown op {op!r}: use one of {', '.join(OPS)}"))
        return
    if op not in _OPS_BY_KIND[path.kind]:
        allowed = ", ".join(_OPS_BY_KIND[path.kind])
        errors.append((_join(at, "op"), f"{node['field']} does not support {op!r} (use {allowed})"))
        return
    problem = _value_problem(path, op, node.get("value"), "value" in node)
    if problem:
        errors.append((_join(at, "value"), problem))


def _value_problem(path: Path, op: str, value: Any, present: bool) -> str | None:
    if op in PRESENCE_OPS:
        return None
    if not present:
        return f"op {op!r} needs a value"
    # A rule is stored (segments, flow documents): PostgreSQL refuses lone surrogates and NUL.
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and (message := text_problem(item)):
            return message
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            return f"op {op!r} needs a non-empty list"
        for item in value:
            problem = _scalar_problem(path, item)
            if problem:
                return f"list item {item!r}: {problem}"
        return None
    if op in NUMERIC_OPS:
        return _number_problem(value)
    if op in MOMENT_OPS:
        if parse_moment(value) is None:
            return "needs an ISO date or date-time string such as 2024-05-31 or 2024-05-31T18:00:00Z"
        return None
    if op == "within_last":
        try:
            parse_duration(value)
        except RuleError as exc:
            return str(exc)
        return None
    if op == "contains" and path.kind == "json":
        return None if _is_scalar(value) else "contains needs a string, number or boolean"
    return _scalar_problem(path, value)  # eq, ne, contains on attributes


def _number_problem(value: Any) -> str | None:
    if not is_number(value):
        return "needs a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "needs a finite number"
    if abs(value) > MAX_NUMBER:
        return "numbers are limited to ±2**53"
    return None


def _scalar_problem(path: Path, value: Any) -> str | None:
    if path.kind == "segment":
        return None if isinstance(value, str) and value else "segment slugs are non-empty strings"
    if path.kind == "subscription":
        if value not in SUBSCRIPTION_STATUSES:
            return f"a subscription status is one of {', '.join(SUBSCRIPTION_STATUSES)}"
        return None
    if path.kind == "string_attr":
        return None if isinstance(value, str) else "this customer attribute compares with strings"
    if path.kind == "number":
        return _number_problem(value)
    if isinstance(value, str | bool):
        return None
    if is_number(value):
        return _number_problem(value)
    return "needs a string, number or boolean (use exists/not_exists for null)"


# --- facts -----------------------------------------------------------------


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


# --- compiling a rule to a Python predicate --------------------------------

_MISSING = object()
Predicate = Callable[[RuleFacts, datetime], bool]
# The ops whose SQL and Python forms are the negation of another op.
_NEGATED = {"ne": "eq", "not_in": "in", "not_exists": "exists"}


def _require_valid(rule: Any, *, allow_event: bool = True) -> None:
    errors = validate_rule(rule, allow_event=allow_event)
    if errors:
        where, message = errors[0]
        raise RuleError(f"{where}: {message}" if where else message)


def _truncate(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def _within_bounds(duration: Duration, now: datetime) -> tuple[datetime, datetime]:
    return _truncate(_ago(duration, now)), _truncate(now)


def _json_eq(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and actual is expected
    if is_number(expected):
        return is_number(actual) and actual == expected
    return isinstance(actual, str) and isinstance(expected, str) and actual == expected


def _moment_of(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return _truncate(value)
    return parse_moment(value)


def _apply(op: str, actual: Any, expected: Any, now: datetime) -> bool:
    """One op on one value (`_MISSING` when there is none), JSON semantics."""
    if op in _NEGATED:
        return not _apply(_NEGATED[op], actual, expected, now)
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
    low, high = _within_bounds(parse_duration(expected), now)  # within_last
    return low <= moment <= high


def _walk(document: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(document, dict) or key not in document:
            return _MISSING
        document = document[key]
    return _MISSING if document is None else document


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
    if path.source == "fields":
        keys = path.keys
        return lambda facts, now: _apply(op, _walk(facts.fields, keys), expected, now)
    if path.source == "event":
        keys = path.keys
        return lambda facts, now: _apply(op, _walk(facts.event, keys), expected, now)
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
    return _compile_leaf(node)


def compile_predicate(rule: Any, *, allow_event: bool = True) -> Predicate:
    """Validate once, then return `predicate(facts, now) -> bool` for many customers."""
    _require_valid(rule, allow_event=allow_event)
    return _compile_node(rule)


def evaluate(rule: Any, facts: RuleFacts) -> bool:
    """Does one customer's loaded facts match `rule`? Raises RuleError on an invalid rule.
    `facts.segments` must already hold the segments the customer belongs to
    (see `load_facts`)."""
    return compile_predicate(rule)(facts, timezone.now())


# --- what a rule needs, and loading it in a batch --------------------------


def _leaves(node: Any):
    if "all" in node or "any" in node:
        for child in node.get("all") or node.get("any"):
            yield from _leaves(child)
    elif "not" in node:
        yield from _leaves(node["not"])
    else:
        yield parse_path(node["field"]), node


@dataclass
class _Needs:
    attrs: set[str] = field(default_factory=set)
    fields: bool = False
    channels: set[str] = field(default_factory=set)
    points: bool = False
    pools: set[str] = field(default_factory=set)

    def add_rule(self, rule: Any) -> set[str]:
        """Record what `rule` reads; returns the segment slugs it names."""
        named: set[str] = set()
        for path, node in _leaves(rule):
            if path.source == "customer":
                self.attrs.add(path.name)
            elif path.source == "fields":
                self.fields = True
            elif path.source == "subscription":
                self.channels.add(path.name)
            elif path.source == "points":
                self.points = True
            elif path.source == "promo_pool":
                self.pools.add(path.name)
            elif path.source == "segment":
                named.update(node["value"])
        return named


@dataclass(frozen=True)
class _SegmentRow:
    id: int
    slug: str
    kind: str
    rule: Any


def _load_segments(rule: Any, needs: _Needs) -> dict[str, _SegmentRow]:
    """Every segment the rule names, directly or through rule segments: one query
    per level of segment nesting, whatever the number of customers. A slug that
    names no segment is left out (it has no members)."""
    segments: dict[str, _SegmentRow] = {}
    asked: set[str] = set()
    pending = needs.add_rule(rule)
    while pending:
        asked |= pending
        rows = Segment.objects.filter(slug__in=sorted(pending)).values_list("id", "slug", "kind", "rule")
        pending = set()
        for segment_id, slug, kind, segment_rule in rows:
            segments[slug] = _SegmentRow(segment_id, slug, kind, segment_rule)
            if kind == Segment.Kind.RULE:
                _require_valid_segment_rule(slug, segment_rule)
                pending |= needs.add_rule(segment_rule)
        pending -= asked
    return segments


def _require_valid_segment_rule(slug: str, rule: Any) -> None:
    errors = validate_rule(rule, allow_event=False)
    if errors:
        where, message = errors[0]
        raise RuleError(f"segment {slug!r} has an invalid rule: {where}: {message}")


def _rule_segment_order(segments: dict[str, _SegmentRow]) -> list[_SegmentRow]:
    """Rule segments, each after the rule segments its rule names; raises on a cycle."""
    order: list[_SegmentRow] = []
    state: dict[str, str] = {}

    def visit(slug: str, trail: list[str]) -> None:
        row = segments.get(slug)
        if row is None or row.kind != Segment.Kind.RULE or state.get(slug) == "done":
            return
        if state.get(slug) == "visiting":
            raise RuleError("segments refer to each other: " + " -> ".join([*trail, slug]))
        state[slug] = "visiting"
        for _, node in _leaves(row.rule):
            if node["field"] == "segment":
                for inner in node["value"]:
                    visit(inner, [*trail, slug])
        state[slug] = "done"
        order.append(row)

    for slug in sorted(segments):
        visit(slug, [])
    return order


def load_facts(
    rule: Any, customer_ids: list[int], *, events: dict[int, dict] | None = None
) -> dict[int, RuleFacts]:
    """RuleFacts for each id in `customer_ids`, loading only what `rule` (and the
    rule segments it names) reads, in a fixed number of queries: one for the
    segments per level of segment nesting, then at most one each for customer
    columns, subscriptions, static memberships, points and promo pools.
    `events` maps customer id -> trigger event payload. Ids without a customer
    row are left out of the result."""
    _require_valid(rule)
    return _load_facts(rule, customer_ids, events=events, now=timezone.now())


def _load_facts(
    rule: Any, customer_ids: list[int], *, events: dict[int, dict] | None, now: datetime
) -> dict[int, RuleFacts]:
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    needs = _Needs()
    segments = _load_segments(rule, needs)
    segment_order = _rule_segment_order(segments)
    events = events or {}
    facts: dict[int, RuleFacts] = {}
    # Always one customer query, even for a rule reading no column: it drops
    # ids whose customer is gone.
    columns = sorted(needs.attrs) + (["fields"] if needs.fields else [])
    for row in Customer.objects.filter(id__in=sql.in_values(ids)).values("id", *columns):
        customer_id = row.pop("id")
        one = facts[customer_id] = RuleFacts(event=events.get(customer_id))
        if needs.fields:
            fields_value = row.pop("fields")
            one.fields = fields_value if isinstance(fields_value, dict) else {}
        one.customer = row
    if not facts:
        return facts
    ids = list(facts)
    if needs.channels:
        statuses = selectors.subscription_statuses(customer_ids=ids, channels=needs.channels)
        for customer_id, by_channel in statuses.items():
            facts[customer_id].subscriptions = by_channel
    static = {row.id: row.slug for row in segments.values() if row.kind == Segment.Kind.STATIC}
    if static:
        memberships = selectors.static_memberships(customer_ids=ids, segment_ids=static)
        for customer_id, segment_ids in memberships.items():
            facts[customer_id].segments = {static[segment_id] for segment_id in segment_ids}
    if needs.points:
        for customer_id, balance in selectors.points_balances(customer_ids=ids, at=now).items():
            facts[customer_id].points = balance
    if needs.pools:
        free = selectors.free_code_counts(pool_slugs=needs.pools)
        available = {slug: free.get(slug, 0) for slug in needs.pools}
        for one in facts.values():
            one.pool_available = available
    # Rule segments after the segments they depend on, so nested ones are known.
    for row in segment_order:
        matches = compile_predicate(row.rule, allow_event=False)
        for one in facts.values():
            if matches(one, now):  # segment rules never read the event (validated)
                one.segments.add(row.slug)
    return facts


def evaluate_many(rule: Any, customer_ids: list[int], *, events: dict[int, dict] | None = None) -> set[int]:
    """The ids among `customer_ids` whose customers match `rule`."""
    matches = compile_predicate(rule)
    now = timezone.now()  # one clock for the points balance and the date ops
    facts = _load_facts(rule, customer_ids, events=events, now=now)
    return {customer_id for customer_id, one in facts.items() if matches(one, now)}


def value_at(path_text: str, facts: RuleFacts) -> Any:
    """The value the rule language sees at a PATH for one customer, None when
    there is none (for a condition node's branches on one attribute). Load the
    facts with a rule naming the path, e.g. {"field": path, "op": "exists"}.
    `segment` has no single value and raises RuleError."""
    path = parse_path(path_text)
    if path.kind == "segment":
        raise RuleError("segment has no single value; use a rule with op in/not_in")
    if path.kind == "string_attr":
        return facts.customer.get(path.name) or None
    if path.kind == "datetime_attr":
        return facts.customer.get(path.name)
    if path.source in ("fields", "event"):
        found = _walk(facts.fields if path.source == "fields" else facts.event, path.keys)
        return None if found is _MISSING else found
    if path.kind == "subscription":
        return facts.subscriptions.get(path.name)
    if path.source == "points":
        return facts.points
    return facts.pool_available.get(path.name, 0)


# --- compiling a rule to SQL -----------------------------------------------


@dataclass(frozen=True)
class _Param:
    value: Any


def _flatten(pieces: Any) -> list:
    flat: list = []
    for piece in pieces:
        if isinstance(piece, list | tuple):
            flat.extend(_flatten(piece))
        else:
            flat.append(piece)
    return flat


class _Predicate(Expression):
    """A boolean SQL condition written per database vendor around one source
    expression (the `fields` column, a points subquery, ...). It is wrapped in
    COALESCE(…, false) so it is never NULL: NOT, AND and OR then behave exactly
    like Python's two-valued logic."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, spec: Any, source: Any) -> None:
        super().__init__()
        self.spec = spec
        self.source = source

    def get_source_expressions(self) -> list:
        return [self.source]

    def set_source_expressions(self, exprs: list) -> None:
        (self.source,) = exprs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list]:
        source_sql, source_params = compiler.compile(self.source)
        parts: list[str] = []
        params: list = []
        for piece in _flatten(self.spec.render(connection.vendor)):
            if piece is _SOURCE:
                parts.append(source_sql)
                params.extend(source_params)
            elif isinstance(piece, _Param):
                parts.append("%s")
                params.append(piece.value)
            else:
                parts.append(piece)
        false = "FALSE" if connection.vendor == "postgresql" else "0"
        return f"COALESCE(({''.join(parts)}), {false})", params


_SOURCE = object()  # where the source expression's SQL goes in a rendered template


def _sql_number(value: Any, vendor: str) -> Any:
    # A float goes to PostgreSQL as the decimal Python prints for it, so numeric
    # comparisons order exactly like Python's (shortest repr round-trips).
    if vendor == "postgresql" and isinstance(value, float):
        return Decimal(repr(value))
    return value


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _sql(template: str, **parts: Any) -> list:
    """Pieces for `_Predicate`: the template's {name}s replaced by SQL pieces
    (lists, `_SOURCE`, `_Param`). Literal braces such as '{}' stay as they are."""
    chunks = _PLACEHOLDER.split(template)
    return [parts[chunk] if index % 2 else chunk for index, chunk in enumerate(chunks)]


@dataclass(frozen=True)
class _JsonSpec:
    """A condition on one JSON value inside the `fields` column."""

    keys: tuple[str, ...]
    op: str  # eq in gt gte lt lte contains exists before after within_last
    values: tuple  # the rule value(s); for moment ops the UTC bounds as "YYYY-MM-DD HH:MM:SS"

    def render(self, vendor: str) -> list:
        if vendor == "postgresql":
            return self._postgresql()
        if vendor == "sqlite":
            return self._sqlite()
        raise RuleError(f"rules are not compiled for the {vendor} database")

    # SQLite: json_type() tells integer/real/text/true/false/null/array/object;
    # json_extract() gives the SQL value (booleans become 1/0, hence the types).
    # Keys are quoted, so a name never indexes an array.
    def _sqlite(self) -> list:
        path = _Param("$" + "".join(f'."{key}"' for key in self.keys))
        kind = _sql("json_type({source}, {path})", source=_SOURCE, path=path)
        value = _sql("json_extract({source}, {path})", source=_SOURCE, path=path)
        op = self.op
        if op == "exists":
            return _sql("{kind} <> 'null'", kind=kind)
        if op in ("eq", "in"):
            return _any_of([_sqlite_eq(kind, value, item) for item in self.values])
        if op in NUMERIC_OPS:
            return _sql(
                "CASE WHEN {kind} IN ('integer', 'real') THEN {value}{op}{bound} ELSE 0 END",
                kind=kind, value=value, op=_SQL_OPS[op], bound=_Param(self.values[0]),
            )  # fmt: skip
        if op == "contains":
            expected = self.values[0]
            in_text = _sql("instr({value}, {expected}) > 0", value=value, expected=_Param(expected))
            in_array = _sql(
                "EXISTS (SELECT 1 FROM json_each({source}, {path}) AS rule_item WHERE {match})",
                source=_SOURCE, path=path, match=_sqlite_eq("rule_item.type", "rule_item.value", expected),
            )  # fmt: skip
            return _sql(
                "CASE WHEN {kind} = 'text' THEN {in_text} WHEN {kind} = 'array' THEN {in_array} ELSE 0 END",
                kind=kind, in_text=in_text if isinstance(expected, str) else "0", in_array=in_array,
            )  # fmt: skip
        # A date string as "YYYY-MM-DD HH:MM:SS" in UTC, else NULL. Through
        # julianday(), 2023-02-30 comes back as 2023-03-02, so comparing the day
        # with itself rejects non-days (date() of the bare text would echo it).
        # The fraction is cut off before strftime, which would round it.
        moment = _sql(
            "CASE WHEN {kind} = 'text' AND {value} REGEXP {pattern}"
            " AND date(julianday(substr({value}, 1, 10))) = substr({value}, 1, 10)"
            " THEN strftime({format}, CASE WHEN substr({value}, 20, 1) = '.'"
            " THEN substr({value}, 1, 19) || ltrim(substr({value}, 21), '0123456789')"
            " ELSE {value} END) END",
            kind=kind, value=value, pattern=_Param(DATE_PATTERN), format=_Param("%Y-%m-%d %H:%M:%S"),
        )  # fmt: skip
        return _moment_compare(moment, self.op, [_Param(bound) for bound in self.values])

    # PostgreSQL: `->` with a text key never indexes an array (like SQLite's
    # quoted keys and Python's dict walk). Casts sit behind CASE: AND does not
    # promise an evaluation order, and a failed cast is an error, not a NULL.
    def _postgresql(self) -> list:
        value = ["(", _SOURCE, *[[" -> ", _Param(key)] for key in self.keys], ")"]
        kind = _sql("jsonb_typeof({value})", value=value)
        text = _sql("({value} #>> '{}')", value=value)
        op = self.op
        if op == "exists":
            return _sql("{kind} <> 'null'", kind=kind)
        if op in ("eq", "in"):
            return _any_of([_postgresql_eq(kind, value, text, item) for item in self.values])
        if op in NUMERIC_OPS:
            return _sql(
                "CASE WHEN {kind} = 'number' THEN CAST({value} AS numeric){op}{bound} ELSE FALSE END",
                kind=kind, value=value, op=_SQL_OPS[op], bound=_Param(_sql_number(self.values[0], "postgresql")),
            )  # fmt: skip
        if op == "contains":
            expected = self.values[0]
            in_text = _sql("strpos({text}, {expected}) > 0", text=text, expected=_Param(expected))
            # @> with a one-element array: some element equals it (type-strict, 5 = 5.0).
            in_array = _sql(
                "{value} @> CAST({items} AS jsonb)", value=value, items=_Param(json.dumps([expected]))
            )
            return _sql(
                "CASE WHEN {kind} = 'string' THEN {in_text} WHEN {kind} = 'array' THEN {in_array} ELSE FALSE END",
                kind=kind, in_text=in_text if isinstance(expected, str) else "FALSE", in_array=in_array,
            )  # fmt: skip
        # The day-of-month check keeps 2023-02-30 away from the cast, which would raise.
        moment = _sql(
            "CASE WHEN {kind} = 'string' AND {text} ~ {pattern} THEN"
            " CASE WHEN CAST(substr({text}, 9, 2) AS integer) <= EXTRACT(DAY FROM"
            " CAST(substr({text}, 1, 7) || '-01' AS date) + INTERVAL '1 month' - INTERVAL '1 day')"
            " THEN date_trunc('second', CASE WHEN {text} ~ {offset}"
            " THEN CAST({text} AS timestamptz) AT TIME ZONE 'UTC' ELSE CAST({text} AS timestamp) END)"
            " END END",
            kind=kind, text=text, pattern=_Param(DATE_PATTERN), offset=_Param(_OFFSET_PATTERN),
        )  # fmt: skip
        return _moment_compare(
            moment,
            self.op,
            [_sql("CAST({bound} AS timestamp)", bound=_Param(bound)) for bound in self.values],
        )


_OFFSET_PATTERN = r"(Z|[+-][0-9]{2}:[0-9]{2})\Z"
_SQL_OPS = {"gt": " > ", "gte": " >= ", "lt": " < ", "lte": " <= ", "eq": " = "}


def _any_of(conditions: list) -> list:
    pieces: list = ["("]
    for index, condition in enumerate(conditions):
        pieces += [" OR " if index else "", "(", condition, ")"]
    return [*pieces, ")"]


def _moment_compare(moment: list, op: str, bounds: list) -> list:
    if op == "before":
        return _sql("({moment}) < {bound}", moment=moment, bound=bounds[0])
    if op == "after":
        return _sql("({moment}) > {bound}", moment=moment, bound=bounds[0])
    return _sql("({moment}) BETWEEN {low} AND {high}", moment=moment, low=bounds[0], high=bounds[1])


def _sqlite_eq(kind: Any, value: Any, expected: Any) -> list:
    if isinstance(expected, bool):
        return _sql("{kind} = {name}", kind=kind, name=_Param("true" if expected else "false"))
    if is_number(expected):
        return _sql("({kind} IN ('integer', 'real') AND {value} = {expected})", kind=kind, value=value, expected=_Param(expected))  # fmt: skip
    return _sql(
        "({kind} = 'text' AND {value} = {expected})", kind=kind, value=value, expected=_Param(expected)
    )


def _postgresql_eq(kind: Any, value: Any, text: Any, expected: Any) -> list:
    if isinstance(expected, bool):
        return _sql("({kind} = 'boolean' AND {text} = {name})", kind=kind, text=text, name=_Param("true" if expected else "false"))  # fmt: skip
    if is_number(expected):
        return _sql(
            "CASE WHEN {kind} = 'number' THEN CAST({value} AS numeric) = {expected} ELSE FALSE END",
            kind=kind, value=value, expected=_Param(_sql_number(expected, "postgresql")),
        )  # fmt: skip
    return _sql(
        "({kind} = 'string' AND {text} = {expected})", kind=kind, text=text, expected=_Param(expected)
    )


@dataclass(frozen=True)
class _CompareSpec:
    """`source OP value` for a number (points, free codes); `in` takes several values."""

    op: str  # eq in gt gte lt lte
    values: tuple

    def render(self, vendor: str) -> list:
        numbers = [_Param(_sql_number(value, vendor)) for value in self.values]
        if self.op == "in":
            listed = [[", " if index else "", number] for index, number in enumerate(numbers)]
            return _sql("{source} IN ({listed})", source=_SOURCE, listed=listed)
        return _sql("{source}{op}{bound}", source=_SOURCE, op=_SQL_OPS[self.op], bound=numbers[0])


@dataclass(frozen=True)
class _ContainsSpec:
    """Case-sensitive substring test on a text column (LIKE folds case on SQLite)."""

    value: str

    def render(self, vendor: str) -> list:
        function = "strpos" if vendor == "postgresql" else "instr"
        return [function, "(", _SOURCE, ", ", _Param(self.value), ") > 0"]


_NEVER = Q(pk__in=[])
_ALWAYS = ~Q(pk__in=[])


def to_q(rule: Any) -> Q:
    """A `Q` selecting the customers that match `rule` (a Customer queryset
    filter), agreeing with `evaluate()` on SQLite and PostgreSQL. Raises
    RuleError for invalid rules, event paths (there is no event in SQL) and
    segments that refer to each other."""
    _require_valid(rule)
    return _SqlCompiler(now=timezone.now()).node(rule, trail=())


@dataclass
class _SqlCompiler:
    now: datetime
    segments: dict[str, _SegmentRow | None] = field(default_factory=dict)

    def node(self, node: dict, *, trail: tuple[str, ...]) -> Q:
        if "all" in node or "any" in node:
            children = [self.node(child, trail=trail) for child in node.get("all") or node.get("any")]
            combined = children[0]
            for child in children[1:]:
                combined = combined & child if "all" in node else combined | child
            return combined
        if "not" in node:
            return ~self.node(node["not"], trail=trail)
        return self.leaf(node, trail=trail)

    def leaf(self, node: dict, *, trail: tuple[str, ...]) -> Q:
        path = parse_path(node["field"])
        op, expected = node["op"], node.get("value")
        if op in _NEGATED:
            return ~self.leaf({**node, "op": _NEGATED[op]}, trail=trail)
        if path.source == "event":
            raise RuleError(
                f"{node['field']}: event fields only exist for a trigger event, not in a customer query"
            )
        if path.kind == "string_attr":
            return self.string_attr(path.name, op, expected)
        if path.kind == "datetime_attr":
            return self.datetime_attr(path.name, op, expected)
        if path.source == "fields":
            return Q(_Predicate(_JsonSpec(path.keys, op, self.json_values(op, expected)), F("fields")))
        if path.kind == "subscription":
            subscriptions = Subscription.objects.filter(customer_id=OuterRef("pk"), channel=path.name)
            if op == "eq":
                subscriptions = subscriptions.filter(status=expected)
            elif op == "in":
                subscriptions = subscriptions.filter(status__in=expected)
            return Q(Exists(subscriptions))
        if path.kind == "segment":
            return self.segments_q(expected, trail=trail)
        if op == "exists":
            return _ALWAYS  # points and free codes are numbers, 0 at least
        if path.source == "points":
            source = selectors.points_balance_expression(at=self.now)
        else:
            source = selectors.free_code_count_expression(pool_slug=path.name)
        values = tuple(expected) if op == "in" else (expected,)
        return Q(_Predicate(_CompareSpec(op, values), source))

    def string_attr(self, name: str, op: str, expected: Any) -> Q:
        if op == "eq":
            return Q(**{name: expected})
        if op == "in":
            return Q(**{f"{name}__in": expected})
        if op == "contains":
            return Q(_Predicate(_ContainsSpec(expected), F(name)))
        return ~Q(**{name: ""})  # exists

    def datetime_attr(self, name: str, op: str, expected: Any) -> Q:
        # The column keeps microseconds; comparing with whole-second bounds this
        # way equals comparing the truncated moment (see the module docstring).
        if op == "exists":
            return _ALWAYS  # created_at is NOT NULL
        if op == "before":
            return Q(**{f"{name}__lt": parse_moment(expected)})
        if op == "after":
            return Q(**{f"{name}__gte": parse_moment(expected) + timedelta(seconds=1)})
        low, high = _within_bounds(parse_duration(expected), self.now)
        return Q(**{f"{name}__gte": low, f"{name}__lt": high + timedelta(seconds=1)})

    def json_values(self, op: str, expected: Any) -> tuple:
        if op in MOMENT_OPS:
            return (_bound_text(parse_moment(expected)),)
        if op == "within_last":
            return tuple(_bound_text(bound) for bound in _within_bounds(parse_duration(expected), self.now))
        if op == "in":
            return tuple(expected)
        return (expected,)

    def segments_q(self, slugs: list[str], *, trail: tuple[str, ...]) -> Q:
        unknown = [slug for slug in slugs if slug not in self.segments]
        if unknown:
            found = {
                slug: _SegmentRow(segment_id, slug, kind, rule)
                for segment_id, slug, kind, rule in Segment.objects.filter(slug__in=unknown).values_list(
                    "id", "slug", "kind", "rule"
                )
            }
            for slug in unknown:
                self.segments[slug] = found.get(slug)
        rows = [self.segments[slug] for slug in dict.fromkeys(slugs) if self.segments[slug] is not None]
        static_ids = [row.id for row in rows if row.kind != Segment.Kind.RULE]
        parts: list[Q] = []
        if static_ids:
            members = SegmentMembership.objects.filter(customer_id=OuterRef("pk"), segment_id__in=static_ids)
            parts.append(Q(Exists(members)))
        for row in rows:
            if row.kind == Segment.Kind.RULE:
                parts.append(self.rule_segment_q(row, trail=trail))
        if not parts:
            return _NEVER
        combined = parts[0]
        for part in parts[1:]:
            combined |= part
        return combined

    def rule_segment_q(self, row: _SegmentRow, *, trail: tuple[str, ...]) -> Q:
        if row.slug in trail:
            raise RuleError("segments refer to each other: " + " -> ".join([*trail, row.slug]))
        _require_valid_segment_rule(row.slug, row.rule)
        return self.node(row.rule, trail=(*trail, row.slug))


def _bound_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def segment_q(segment: Segment) -> Q:
    """The members of `segment`: membership rows of a static segment, the
    customers matching the rule of a rule segment."""
    if segment.kind == Segment.Kind.RULE:
        compiler = _SqlCompiler(now=timezone.now())
        row = _SegmentRow(segment.id, segment.slug, segment.kind, segment.rule)
        compiler.segments[segment.slug] = row
        return compiler.rule_segment_q(row, trail=())
    return Q(Exists(SegmentMembership.objects.filter(customer_id=OuterRef("pk"), segment_id=segment.id)))


def segment_customer_ids_queryset(slug: str) -> QuerySet:
    """Ids of the customers in the segment `slug` (a values_list queryset, usable
    as a subquery). Raises RuleError for an unknown slug."""
    segment = Segment.objects.filter(slug=slug).first()
    if segment is None:
        raise RuleError(f"unknown segment {slug!r}")
    return Customer.objects.filter(segment_q(segment)).values_list("id", flat=True)
