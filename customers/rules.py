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
    (``customer.fields.address.city``). Names are letters, digits, ``_`` and
    ``-``. A name never indexes into an array.
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
    now. Always has a value (0 without entries).
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
  ``PT12H``, ``P1M``); matches when the field's moment lies in
  [now - D, now] (both ends inclusive, one-second precision; months and years
  counted on the UTC calendar). ``now`` is `django.utils.timezone.now()`.

Date strings (values and stored fields)::

    YYYY-MM-DD                                   midnight UTC
    YYYY-MM-DD[T| ]HH:MM[:SS[.ffffff]][Z|±HH:MM]  no offset means UTC

Years 1000-2999, real calendar days only (2023-02-30 is not a date), offsets
up to ±14:59. A string that is not in this form is not a date.

Numbers in rule values are limited to ±2**53 so that Python floats, SQLite
reals and PostgreSQL numerics order them identically.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta

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
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in"),
}

_NAME = re.compile(r"^[\w-]+$")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")

# The one accepted date form. \A and \Z mean the same in Python's re (SQLite's
# REGEXP is Python's re.search, registered by Django) and in PostgreSQL's ARE.
DATE_PATTERN = (
    r"\A[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?)?\Z"
)
_DATE_RE = re.compile(DATE_PATTERN)

_DURATION_RE = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


class RuleError(ValueError):
    """A rule that cannot be evaluated or compiled (invalid, cyclic segments,
    event paths where there is no event)."""


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


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0
    seconds: int = 0

    def subtract_from(self, moment: datetime) -> datetime:
        return (
            moment
            - relativedelta(years=self.years, months=self.months, days=self.days)
            - timedelta(seconds=self.seconds)
        )


def parse_duration(text: Any) -> Duration:
    """A non-negative ISO 8601 duration; fractions are not accepted. Raises RuleError."""
    match = _DURATION_RE.match(text) if isinstance(text, str) else None
    if not match or text == "P":
        raise RuleError(f"{text!r} is not a non-negative ISO 8601 duration such as P7D, PT12H or P1M")
    parts = {key: int(value or 0) for key, value in match.groupdict().items()}
    return Duration(
        years=parts["years"],
        months=parts["months"],
        days=parts["weeks"] * 7 + parts["days"],
        seconds=parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"],
    )


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
