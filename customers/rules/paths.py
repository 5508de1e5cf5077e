"""The rule language's vocabulary: the paths a rule names (`Path`,
`parse_path`), the ops and which paths take them, how values are read
(`is_number`, `parse_moment`, `parse_duration`, `within_bounds`) and THE path
reader for rows already loaded (`read_path`, `read_keys`). The semantics are
described in customers/rules/__init__.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from customers.errors import RuleError
from maestra import durations
from maestra.durations import Duration

MAX_DEPTH = 10
MAX_NUMBER = 2**53

CUSTOMER_STRING_ATTRS = ("external_id", "email", "phone", "first_name", "last_name", "timezone", "locale")
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
# The event-history leaf {"event", "where", "within", "op", "value"}: how many
# of the customer's events of one type (matching `where`, inside `within`).
EVENT_LEAF_KEYS = ("event", "where", "within", "op", "value")
EVENT_OPS = ("count_gte", "count_lte", "count_eq", "exists", "not_exists")
COUNT_OPS = ("count_gte", "count_lte", "count_eq")
MAX_COUNT = 2**31 - 1  # a PostgreSQL integer: counts compare with it in SQL
MAX_EVENT_TYPE_LENGTH = 100  # customers.Event.type
# The ops whose SQL and Python forms are the negation of another op.
NEGATED = {"ne": "eq", "not_in": "in", "not_exists": "exists"}

# Which ops each kind of path accepts (validation; evaluation relies on it).
OPS_BY_KIND = {
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


def is_event_leaf(node: Any) -> bool:
    """Is `node` an event-history leaf (rather than a field leaf or a group)?"""
    return isinstance(node, dict) and "event" in node


# --- values ----------------------------------------------------------------


def is_number(value: Any) -> bool:
    # bool is an int subclass in Python; JSON keeps them apart, so do we.
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_scalar(value: Any) -> bool:
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


def truncate(moment: datetime) -> datetime:
    """A moment in UTC at one-second precision, as every date op compares."""
    return moment.astimezone(UTC).replace(microsecond=0)


def within_bounds(duration: Duration, now: datetime) -> tuple[datetime, datetime]:
    """The [now - D, now] interval of `within_last D`, both ends truncated."""
    return truncate(_ago(duration, now)), truncate(now)


# --- reading a path in loaded rows -------------------------------------------


def read_keys(document: Any, keys: tuple[str, ...]) -> Any:
    """The value under `keys` in nested JSON objects; None when a key is
    missing, a step is not an object or the value is null (the rule language's
    "no value"). A name never indexes into a list, as in the SQL form."""
    for key in keys:
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return document


def read_path(
    path: Path | str, *, customer: Mapping[str, Any] | None, event: Mapping[str, Any] | None
) -> Any:
    """The value the rule language sees at a customer or event PATH, read from
    rows already loaded; None when there is none (an empty profile string
    included). `customer` is the customer's row as a dict (columns by name,
    the custom fields under "fields"), `event` the trigger event's payload;
    either may be None. Subscription, segment, points and promo pool paths are
    not stored in those rows: RuleError, as for a path that does not parse."""
    if isinstance(path, str):
        path = parse_path(path)
    if path.source == "event":
        return read_keys(event, path.keys)
    if path.source == "fields":
        return read_keys((customer or {}).get("fields"), path.keys)
    if path.source == "customer":
        value = (customer or {}).get(path.name)
        return None if value == "" else value
    raise RuleError(f"{path.source} paths are not read from a customer row or an event")
