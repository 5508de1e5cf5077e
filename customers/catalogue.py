"""What the rule builder offers to pick from: the customer attributes, the
custom field names present in the data and the event types received with
their payload keys, each with the value types seen; plus the segments, promo
pools, channels and the ops per value type.

Computed from samples, never from a full scan: the most recent
`CUSTOMER_SAMPLE` customers and `EVENT_SAMPLE` events (by primary key, an
index walk), and cached for `CACHE_SECONDS` so that the builders of many
open pages cost one computation (segments and pools, small tables, are
read each time). A name seen only in older rows is missing
from the lists; the builder still takes any path typed by hand."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from django.core.cache import cache

from customers.models import Customer, Event, PromoPool, Segment
from customers.rules.paths import (
    CHANNELS,
    CUSTOMER_DATETIME_ATTRS,
    CUSTOMER_STRING_ATTRS,
    EVENT_OPS,
    OPS_BY_KIND,
    SUBSCRIPTION_STATUSES,
    is_number,
    parse_moment,
)

CUSTOMER_SAMPLE = 1000
EVENT_SAMPLE = 5000
CACHE_SECONDS = 60
CACHE_KEY = "customers:rule-catalogue:v1"
LIST_LIMIT = 2000  # segments, pools, event types, keys: a page never carries megabytes
MAX_KEY_DEPTH = 3  # nested objects are walked this deep (customer.fields.address.city)
# The product's own event types, offered even before one was received.
SYSTEM_EVENT_TYPES = ("customer_created", "subscription_changed", "email_opened", "email_clicked")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # the names a rule path can address

# Which ops the builder offers for a value of each type (a subset of the
# language's ops for that path kind; the server validates what is saved).
OPS_BY_TYPE = {
    "string": ["eq", "ne", "in", "not_in", "contains", "exists", "not_exists"],
    "number": ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "not_exists"],
    "boolean": ["eq", "ne", "exists", "not_exists"],
    "date": ["before", "after", "within_last", "exists", "not_exists"],
    "list": ["contains", "exists", "not_exists"],
    "object": ["exists", "not_exists"],
    "any": list(OPS_BY_KIND["json"]),
    "subscription": list(OPS_BY_KIND["subscription"]),
    "segment": list(OPS_BY_KIND["segment"]),
    "string_attr": list(OPS_BY_KIND["string_attr"]),
    "datetime_attr": list(OPS_BY_KIND["datetime_attr"]),
}


def value_type(value: Any) -> str | None:
    """The builder's type of a JSON value; None for null (no information)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "date" if parse_moment(value) is not None else "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _collect(document: Any, prefix: str, depth: int, into: dict[str, Counter]) -> None:
    """Add every addressable key path of `document` with the type of its value."""
    if not isinstance(document, dict):
        return
    for key, value in document.items():
        if not isinstance(key, str) or not _NAME.match(key):
            continue
        path = f"{prefix}{key}"
        kind = value_type(value)
        if kind is not None:
            into[path][kind] += 1
        if isinstance(value, dict) and depth < MAX_KEY_DEPTH:
            _collect(value, f"{path}.", depth + 1, into)


def _keys(found: dict[str, Counter]) -> list[dict[str, Any]]:
    """[{"path", "type", "types"}] sorted by path; `type` is the most seen
    type ("any" when several are common), `types` every type seen."""
    result = []
    for path in sorted(found)[:LIST_LIMIT]:
        counts = found[path]
        types = [name for name, _ in counts.most_common()]
        # A date string is also a string: strings that are sometimes dates stay "string".
        if set(types) == {"date", "string"}:
            main = "string" if counts["string"] > counts["date"] else "date"
        elif len(types) == 1:
            main = types[0]
        else:
            main = "any"
        result.append({"path": path, "type": main, "types": types})
    return result


def custom_fields() -> list[dict[str, Any]]:
    """The custom field key paths of the most recent customers (without the
    `customer.fields.` prefix)."""
    found: dict[str, Counter] = defaultdict(Counter)
    recent = Customer.objects.order_by("-id").values_list("fields", flat=True)[:CUSTOMER_SAMPLE]
    for fields in recent:
        _collect(fields, "", 1, found)
    return _keys(found)


def event_types() -> list[dict[str, Any]]:
    """The event types among the most recent events, each with its payload
    key paths (without the `event.` prefix), most frequent type first."""
    seen: Counter = Counter()
    keys: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    recent = Event.objects.order_by("-id").values_list("type", "payload")[:EVENT_SAMPLE]
    for event_type, payload in recent:
        seen[event_type] += 1
        _collect(payload, "", 1, keys[event_type])
    for event_type in SYSTEM_EVENT_TYPES:
        seen.setdefault(event_type, 0)
    ordered = sorted(seen, key=lambda name: (-seen[name], name))[:LIST_LIMIT]
    return [{"type": name, "seen": seen[name], "keys": _keys(keys.get(name, {}))} for name in ordered]


def _attributes() -> list[dict[str, str]]:
    return [{"path": f"customer.{name}", "type": "string_attr"} for name in CUSTOMER_STRING_ATTRS] + [
        {"path": f"customer.{name}", "type": "datetime_attr"} for name in CUSTOMER_DATETIME_ATTRS
    ]


def compute_samples() -> dict[str, Any]:
    """The sampled part of the catalogue (what the cache holds)."""
    return {"fields": custom_fields(), "events": event_types()}


def rule_catalogue(*, fresh: bool = False) -> dict[str, Any]:
    """The catalogue. The sampled names come from the cache when a computation
    younger than CACHE_SECONDS is there (`fresh` recomputes them); segments and
    pools are read each time (small tables: a new segment shows at once)."""
    samples = None if fresh else cache.get(CACHE_KEY)
    if samples is None:
        samples = compute_samples()
        cache.set(CACHE_KEY, samples, CACHE_SECONDS)
    return {
        "attributes": _attributes(),
        **samples,
        "channels": list(CHANNELS),
        "statuses": list(SUBSCRIPTION_STATUSES),
        "segments": list(Segment.objects.order_by("slug").values("slug", "name", "kind")[:LIST_LIMIT]),
        "pools": list(PromoPool.objects.order_by("slug").values("slug", "name")[:LIST_LIMIT]),
        "ops_by_type": OPS_BY_TYPE,
        "event_ops": list(EVENT_OPS),
        "sample": {"customers": CUSTOMER_SAMPLE, "events": EVENT_SAMPLE},
    }
