"""Writes on customers, a whole batch at a time.

The flows engine's steps node, event ingestion, the REST API and the import
commands all call these functions. Each one takes a batch and runs a bounded
number of queries however large the batch is. A batch travels to the database
as ONE JSON parameter that SQL unpacks into a derived table (`_Rows`), so
neither SQLite's 999-variable limit nor Django's bulk_create splitting turns a
batch of 5,000 into dozens of statements.

Repeating a call writes nothing new. The models' unique keys make that so
(Event.external_id, PointsEntry.source_key, PromoCode.issue_key, one
Subscription per channel, one SegmentMembership per segment and customer),
and the writes are INSERT … ON CONFLICT DO NOTHING. That is also what keeps
two workers running the same batch at once from writing anything twice.

The product's own events (customer_created, subscription_changed) are stored
as unprocessed Event rows; the flows engine sweeps them and matches them
against flows. This module never imports flows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from customers import selectors
from customers.errors import (  # defined in the leaf module; importable from here as before
    CustomerServiceError,
    InvalidInput,
    SegmentNotStatic,
    UnknownPromoPool,
    UnknownSegment,
)
from customers.models import (
    Channel,
    Customer,
    Event,
    PointsEntry,
    PromoCode,
    PromoPool,
    Segment,
    SegmentMembership,
    Subscription,
)
from maestra import sql
from maestra.jsonvalues import json_problems, text_problem
from maestra.zones import known_zones

logger = logging.getLogger(__name__)

CUSTOMER_CREATED = "customer_created"
SUBSCRIPTION_CHANGED = "subscription_changed"

# Profile attributes that upsert_customers and set_field write as columns;
# every other name is a key of Customer.fields.
PROFILE_ATTRIBUTES = ("email", "phone", "first_name", "last_name", "timezone")
# (TextChoices.values builds a new list on every access: too slow per row.)
CHANNELS = tuple(Channel.values)
SUBSCRIPTION_STATUSES = tuple(Subscription.Status.values)


class _Errors:
    """Collects every problem of a batch, so the caller sees all of them at once."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, index: int, field: str, message: str) -> None:
        self.items.append({"index": index, "field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidInput(self.items)


# --- SQL plumbing -------------------------------------------------------------
# The only places that know PostgreSQL from SQLite.


class _Rows:
    """A batch of rows sent as one JSON-array parameter and read back in SQL as
    a derived table aliased `r` (maestra.sql.json_rows). `columns` maps
    name -> int|text|bool|datetime|json."""

    def __init__(self, columns: dict[str, str], rows: Iterable[dict[str, Any]]) -> None:
        kinds = {name: "ts" if kind == "datetime" else kind for name, kind in columns.items()}
        self.sql, (self.param,) = sql.json_rows(kinds, list(rows))


_db_datetime = sql.db_value  # a datetime as a raw-SQL parameter, stored the way the ORM stores it
_value_set_sql = sql.value_set  # `SELECT` of the given values with one parameter, however many


_in = sql.in_values  # `field__in=` with one parameter, not one per value


def _json_object_with_key_sql(column: str, value_sql: str) -> str:
    """SQL for `column` (a JSON object) with one key set to the JSON text
    `value_sql`; the key is the first parameter (before those of value_sql).
    A non-object column value counts as an empty object."""
    if connection.vendor == "postgresql":
        return (
            f"(CASE WHEN jsonb_typeof({column}) = 'object' THEN {column} ELSE '{{}}'::jsonb END)"
            f" || jsonb_build_object(%s::text, ({value_sql})::jsonb)"
        )
    return (
        f"json_set(CASE WHEN json_type({column}) = 'object' THEN {column} ELSE '{{}}' END,"
        f" '$.\"' || %s || '\"', json({value_sql}))"
    )


def _execute(sql: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- Validation helpers -------------------------------------------------------


def _max_length(model: type, field: str) -> int:
    return model._meta.get_field(field).max_length


def _text_cleaner(max_length: int, *, required: bool = False) -> Callable[[Any], str]:
    def clean(value: Any) -> str:
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if message := text_problem(value):
            raise ValueError(message)
        value = value.strip()
        if required and not value:
            raise ValueError("must not be empty")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value

    return clean


_clean_email_text = _text_cleaner(_max_length(Customer, "email"))
_clean_timezone_text = _text_cleaner(_max_length(Customer, "timezone"))


def _clean_email(value: Any) -> str:
    value = _clean_email_text(value)
    if value:
        try:
            validate_email(value)
        except ValidationError:
            raise ValueError(f"{value!r} is not a valid email address") from None
    return value


def _clean_timezone(value: Any) -> str:
    value = _clean_timezone_text(value)
    if value and value not in known_zones():
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)")
    return value


# None and "" clear an attribute; surrounding whitespace is dropped.
_PROFILE_CLEANERS: dict[str, Callable[[Any], str]] = {
    "email": _clean_email,
    "phone": _text_cleaner(_max_length(Customer, "phone")),
    "first_name": _text_cleaner(_max_length(Customer, "first_name")),
    "last_name": _text_cleaner(_max_length(Customer, "last_name")),
    "timezone": _clean_timezone,
}
_clean_external_id = _text_cleaner(_max_length(Customer, "external_id"), required=True)
_clean_event_external_id = _text_cleaner(_max_length(Event, "external_id"), required=True)
_clean_event_type = _text_cleaner(_max_length(Event, "type"), required=True)
_clean_reason = _text_cleaner(_max_length(PointsEntry, "reason"))
_clean_source_key = _text_cleaner(_max_length(PointsEntry, "source_key"), required=True)
_clean_issue_key = _text_cleaner(_max_length(PromoCode, "issue_key"), required=True)
_clean_code = _text_cleaner(_max_length(PromoCode, "code"), required=True)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise ValueError("must be JSON-serializable (no NaN, dates as strings)") from None


def _json_object_problems(value: Any, name: str) -> list[tuple[str, str]]:
    """(field, message) for each reason `value` cannot be stored as the JSON
    object `name` (custom fields, an event payload): plain JSON nested at most
    32 levels, valid Unicode (maestra/jsonvalues.py), the field naming the
    offending spot ("payload.items.0.name")."""
    if not isinstance(value, dict):
        return [(name, "must be an object")]
    if not all(isinstance(key, str) and key for key in value):
        return [(name, "keys must be non-empty strings")]
    problems = [(f"{name}.{path}" if path else name, message) for path, message in json_problems(value)]
    if not problems:
        try:
            _json_text(value)
        except ValueError as exc:
            problems.append((name, str(exc)))
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_aware(value: Any) -> bool:
    return isinstance(value, datetime) and timezone.is_aware(value)


def _require_int_ids(customer_ids: Iterable[Any]) -> None:
    bad = [index for index, customer_id in enumerate(customer_ids) if not _is_int(customer_id)]
    if bad:
        raise InvalidInput(
            [{"index": index, "field": "customer_id", "message": "must be an integer"} for index in bad]
        )


def _missing_customers(customer_ids: Iterable[int]) -> set[int]:
    wanted = set(customer_ids)
    if not wanted:
        return set()
    found = set(Customer.objects.filter(id__in=_in(wanted)).values_list("id", flat=True))
    return wanted - found


def _report_missing_customers(items: Sequence[Any], customer_id_of: Callable[[Any], int]) -> None:
    """One query; InvalidInput naming each item whose customer does not exist."""
    missing = _missing_customers(customer_id_of(item) for item in items)
    if missing:
        errors = _Errors()
        for index, item in enumerate(items):
            if customer_id_of(item) in missing:
                errors.add(index, "customer_id", f"customer {customer_id_of(item)} does not exist")
        errors.raise_if_any()


# --- Events -------------------------------------------------------------------

_EVENT_COLUMNS = {
    "ord": "int",
    "external_id": "text",
    "customer_id": "int",
    "type": "text",
    "occurred_at": "datetime",
    "payload": "json",
    "depth": "int",
}


def _insert_events(events: list[dict[str, Any]], *, now: datetime) -> list[int]:
    """Insert validated events, skipping external ids already stored; return
    the new ids. Rows go in ordered by external id so two batches racing for
    the same ids take their locks in the same order (no deadlock); `ord`
    keeps the batch's own order among the rest."""
    if not events:
        return []
    rows = _Rows(_EVENT_COLUMNS, ({**event, "ord": index} for index, event in enumerate(events)))
    table = Event._meta.db_table
    returned = _fetch(
        f"""
        INSERT INTO {table} (external_id, customer_id, "type", occurred_at, received_at, payload, depth)
        SELECT r.external_id, r.customer_id, r."type", r.occurred_at, %s, r.payload, r.depth
        FROM {rows.sql} WHERE true
        ORDER BY r.external_id, r.ord
        ON CONFLICT (external_id) DO NOTHING
        RETURNING id
        """,
        [_db_datetime(now), rows.param],
    )
    return sorted(row[0] for row in returned)


def _own_event(customer_id: int, event_type: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "external_id": None,
        "customer_id": customer_id,
        "type": event_type,
        "occurred_at": now,
        "payload": payload,
        "depth": 0,
    }


def store_events(*, events: list[dict[str, Any]], depth: int = 0) -> dict[str, Any]:
    """Store events for the engine to match against flows.

    Each event is {"external_id"?: str|None, "customer_id": int, "type": str,
    "occurred_at": aware datetime, "payload": dict}. An external id already
    stored, or repeated within the batch (the first one wins), is a duplicate
    and ignored; two identical batches stored at the same time store each id
    once (ON CONFLICT DO NOTHING waits for the other transaction). Events deeper
    than settings.MAESTRA_MAX_EVENT_DEPTH are dropped, so chains of flows that
    emit events to each other cannot spin forever.

    Returns {"accepted", "duplicates", "dropped", "ids" (stored, ascending)}.
    Any invalid item -> InvalidInput listing all of them, nothing stored."""
    if not _is_int(depth) or depth < 0:
        raise InvalidInput([{"field": "depth", "message": "must be an integer >= 0"}])
    errors = _Errors()
    clean: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            errors.add(index, "", "must be an object")
            continue
        for key in event.keys() - {"external_id", "customer_id", "type", "occurred_at", "payload"}:
            errors.add(index, key, "unknown attribute")
        external_id = event.get("external_id")
        if external_id is not None:
            try:
                external_id = _clean_event_external_id(external_id)
            except ValueError as exc:
                errors.add(index, "external_id", str(exc))
        if not _is_int(event.get("customer_id")):
            errors.add(index, "customer_id", "must be an integer")
        try:
            event_type = _clean_event_type(event.get("type"))
        except ValueError as exc:
            errors.add(index, "type", str(exc))
            event_type = ""
        if not _is_aware(event.get("occurred_at")):
            errors.add(index, "occurred_at", "must be a datetime with a time zone")
        payload = event.get("payload", {})
        for field, message in _json_object_problems(payload, "payload"):
            errors.add(index, field, message)
        clean.append(
            {
                "external_id": external_id,
                "customer_id": event.get("customer_id"),
                "type": event_type,
                "occurred_at": event.get("occurred_at"),
                "payload": payload,
                "depth": depth,
            }
        )
    errors.raise_if_any()

    if depth > settings.MAESTRA_MAX_EVENT_DEPTH:
        if events:
            logger.warning(
                "dropped %d %r event(s) at depth %d > MAESTRA_MAX_EVENT_DEPTH=%d (a loop between flows?)",
                len(events),
                clean[0]["type"],
                depth,
                settings.MAESTRA_MAX_EVENT_DEPTH,
            )
        return {"accepted": 0, "duplicates": 0, "dropped": len(events), "ids": []}

    _report_missing_customers(clean, lambda event: event["customer_id"])
    seen: set[str] = set()
    unique: list[dict[str, Any]] = []
    for event in clean:
        if event["external_id"] is not None:
            if event["external_id"] in seen:
                continue
            seen.add(event["external_id"])
        unique.append(event)
    ids = _insert_events(unique, now=timezone.now())
    return {"accepted": len(ids), "duplicates": len(events) - len(ids), "dropped": 0, "ids": ids}


def emit_events(*, customer_ids: list[int], event_type: str, payload: dict[str, Any], depth: int) -> int:
    """The emit_event step: one event per customer, occurring now. `depth` is
    the depth the new events get (the triggering event's depth + 1); too deep
    and nothing is stored. Returns how many were stored."""
    now = timezone.now()
    result = store_events(
        events=[
            {"customer_id": customer_id, "type": event_type, "occurred_at": now, "payload": payload}
            for customer_id in dict.fromkeys(customer_ids)
        ],
        depth=depth,
    )
    return result["accepted"]


# --- Customers ------------------------------------------------------------------


class UpsertResult(dict[str, int]):
    """external_id -> customer id, in the order of the input; also says which
    external ids were `created` and which existing ones `changed`."""

    def __init__(self, ids: dict[str, int], *, created: set[str], changed: set[str]) -> None:
        super().__init__(ids)
        self.created = created
        self.changed = changed


_CUSTOMER_INSERT_COLUMNS = {
    "external_id": "text",
    "email": "text",
    "email_valid": "bool",
    "phone": "text",
    "first_name": "text",
    "last_name": "text",
    "timezone": "text",
    "fields": "json",
    "push_tokens": "json",
}


def _insert_customers(profiles: list[dict[str, Any]], *, now: datetime) -> dict[str, int]:
    """Insert the customers whose external id is not taken yet; return
    external_id -> id of those this call inserted (a concurrent transaction
    inserting the same id wins, and the row is left to the update path)."""
    if not profiles:
        return {}
    rows = _Rows(
        _CUSTOMER_INSERT_COLUMNS,
        (
            {
                "email": "",
                "phone": "",
                "first_name": "",
                "last_name": "",
                "timezone": "",
                "fields": {},
                **profile,
                "email_valid": True,
                "push_tokens": {},
            }
            for profile in profiles
        ),
    )
    columns = ", ".join(f'"{name}"' for name in _CUSTOMER_INSERT_COLUMNS)
    selects = ", ".join(f'r."{name}"' for name in _CUSTOMER_INSERT_COLUMNS)
    stamp = _db_datetime(now)
    returned = _fetch(
        f"""
        INSERT INTO {Customer._meta.db_table} ({columns}, created_at, updated_at)
        SELECT {selects}, %s, %s
        FROM {rows.sql} WHERE true
        ORDER BY r.external_id
        ON CONFLICT (external_id) DO NOTHING
        RETURNING id, external_id
        """,
        [stamp, stamp, rows.param],
    )
    return {external_id: customer_id for customer_id, external_id in returned}


def _clean_upsert_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Validate every row; merge rows repeating an external id (later values
    win, fields and subscriptions merged key by key), keeping first-seen order."""
    errors = _Errors()
    merged: dict[str, dict[str, Any]] = {}
    allowed = {"external_id", "fields", "subscriptions", *PROFILE_ATTRIBUTES}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.add(index, "", "must be an object")
            continue
        for key in sorted(row.keys() - allowed):
            errors.add(index, key, "unknown attribute")
        try:
            external_id = _clean_external_id(row.get("external_id"))
        except ValueError as exc:
            errors.add(index, "external_id", str(exc))
            continue
        target = merged.setdefault(external_id, {"attributes": {}, "fields": {}, "subscriptions": {}})
        for name, cleaner in _PROFILE_CLEANERS.items():
            if name in row:
                try:
                    target["attributes"][name] = cleaner(row[name])
                except ValueError as exc:
                    errors.add(index, name, str(exc))
        if "fields" in row:
            problems = _json_object_problems(row["fields"], "fields")
            for field, message in problems:
                errors.add(index, field, message)
            if not problems:
                target["fields"].update(row["fields"])
        if "subscriptions" in row:
            subscriptions = row["subscriptions"]
            if not isinstance(subscriptions, dict):
                errors.add(index, "subscriptions", "must be an object {channel: status}")
                continue
            for channel, status in subscriptions.items():
                if channel not in CHANNELS:
                    errors.add(index, f"subscriptions.{channel}", f"unknown channel (one of {CHANNELS})")
                elif status not in SUBSCRIPTION_STATUSES:
                    errors.add(
                        index,
                        f"subscriptions.{channel}",
                        f"unknown status {status!r} (one of {SUBSCRIPTION_STATUSES})",
                    )
                else:
                    target["subscriptions"][channel] = status
    errors.raise_if_any()
    return merged


_CUSTOMER_UPDATE_COLUMNS = {
    "id": "int",
    "email": "text",
    "email_valid": "bool",
    "phone": "text",
    "first_name": "text",
    "last_name": "text",
    "timezone": "text",
    "fields": "json",
}


def upsert_customers(*, rows: list[dict[str, Any]], source: str = "api") -> UpsertResult:
    """Create or update customers by external id.

    A row is {"external_id", "email"?, "phone"?, "first_name"?, "last_name"?,
    "timezone"? (IANA), "fields"?: {...}, "subscriptions"?: {channel: status}}.
    Attributes left out stay as they are; None or "" clears one. `fields` is
    MERGED into the stored fields (given keys overwrite, others stay; a key set
    to null is stored as null) — so integrations can send only what changed.
    A changed email is assumed deliverable again (email_valid back to True).

    New customers emit `customer_created`; every subscription that really
    changes emits `subscription_changed` {"channel", "old", "new", "source"}
    (old is None for a first subscription; `source` says who changed it: api,
    import, …). Invalid rows -> InvalidInput with {index, field, message} for
    each problem and nothing written.

    Existing rows are locked (FOR UPDATE, id order) while the merge is
    computed, so a concurrent set_field or set_subscriptions is never lost."""
    if not isinstance(source, str) or not source:
        raise InvalidInput([{"field": "source", "message": "must be a non-empty string"}])
    merged = _clean_upsert_rows(rows)
    if not merged:
        return UpsertResult({}, created=set(), changed=set())
    now = timezone.now()
    with transaction.atomic():
        created = _insert_customers(
            [
                {"external_id": external_id, **row["attributes"], "fields": row["fields"]}
                for external_id, row in merged.items()
            ],
            now=now,
        )
        not_created = [x for x in merged if x not in created]
        existing = (
            list(
                Customer.objects.select_for_update()
                .filter(external_id__in=_in(not_created, kind="text"))
                .order_by("id")
                .values("id", "external_id", "email_valid", "fields", *PROFILE_ATTRIBUTES)
            )
            if not_created
            else []
        )
        if len(existing) != len(not_created):
            # Skipped by the INSERT as taken, then gone: deleted meanwhile.
            raise CustomerServiceError("a customer was deleted while being updated; send the batch again")
        ids = dict(created)
        changed: set[str] = set()
        updates: list[dict[str, Any]] = []
        for current in existing:
            external_id = current["external_id"]
            ids[external_id] = current["id"]
            wanted = merged[external_id]
            new = {**current, **wanted["attributes"]}
            if wanted["fields"]:
                stored = current["fields"] if isinstance(current["fields"], dict) else {}
                new["fields"] = {**stored, **wanted["fields"]}
            if new["email"] != current["email"]:
                new["email_valid"] = True
            if new != current:
                updates.append(new)
                changed.add(external_id)
        if updates:
            rows_sql = _Rows(_CUSTOMER_UPDATE_COLUMNS, updates)
            table = Customer._meta.db_table
            assignments = ", ".join(
                f'"{name}" = r."{name}"' for name in _CUSTOMER_UPDATE_COLUMNS if name != "id"
            )
            _execute(
                f"UPDATE {table} SET {assignments}, updated_at = %s FROM {rows_sql.sql} WHERE {table}.id = r.id",
                [_db_datetime(now), rows_sql.param],
            )

        events = [_own_event(ids[external_id], CUSTOMER_CREATED, {}, now) for external_id in created]
        subscription_events = _change_subscriptions(
            {
                (ids[external_id], channel): status
                for external_id, row in merged.items()
                for channel, status in row["subscriptions"].items()
            },
            now=now,
            source=source,
        )
        resubscribed = {event["customer_id"] for event in subscription_events}
        changed.update(
            x for x, customer_id in ids.items() if customer_id in resubscribed and x not in created
        )
        _insert_events(events + subscription_events, now=now)
    return UpsertResult({x: ids[x] for x in merged}, created=set(created), changed=changed)


def ensure_customers(*, external_ids: list[str]) -> dict[str, int]:
    """external_id -> id for each given id, creating the missing customers
    (each new one emits `customer_created`). Used by event ingestion: an event
    for an unknown customer creates the customer."""
    errors = _Errors()
    unique: dict[str, None] = {}
    for index, external_id in enumerate(external_ids):
        try:
            unique[_clean_external_id(external_id)] = None
        except ValueError as exc:
            errors.add(index, "external_id", str(exc))
    errors.raise_if_any()
    if not unique:
        return {}
    now = timezone.now()
    with transaction.atomic():
        created = _insert_customers([{"external_id": x} for x in unique], now=now)
        rest = [x for x in unique if x not in created]
        ids = dict(created)
        if rest:
            ids.update(
                Customer.objects.filter(external_id__in=_in(rest, kind="text")).values_list(
                    "external_id", "id"
                )
            )
        _insert_events([_own_event(ids[x], CUSTOMER_CREATED, {}, now) for x in created], now=now)
    return {x: ids[x] for x in unique}


# --- Subscriptions ----------------------------------------------------------------


def _change_subscriptions(
    wanted: dict[tuple[int, str], str], *, now: datetime, source: str
) -> list[dict[str, Any]]:
    """Write the statuses that differ from the stored ones; return the
    subscription_changed events to store. The caller holds the customers'
    row locks (or created them), so the read-compare-write is race-free."""
    if not wanted:
        return []
    current = {
        (customer_id, channel): status
        for customer_id, channel, status in Subscription.objects.filter(
            customer_id__in=_in({customer_id for customer_id, _ in wanted})
        ).values_list("customer_id", "channel", "status")
    }
    changes = [
        (customer_id, channel, current.get((customer_id, channel)), status)
        for (customer_id, channel), status in wanted.items()
        if current.get((customer_id, channel)) != status
    ]
    if not changes:
        return []
    rows = _Rows(
        {"customer_id": "int", "channel": "text", "status": "text"},
        ({"customer_id": c, "channel": ch, "status": new} for c, ch, _old, new in changes),
    )
    _execute(
        f"""
        INSERT INTO {Subscription._meta.db_table} (customer_id, channel, status, updated_at)
        SELECT r.customer_id, r.channel, r.status, %s FROM {rows.sql} WHERE true
        ON CONFLICT (customer_id, channel) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at
        """,
        [_db_datetime(now), rows.param],
    )
    return [
        _own_event(c, SUBSCRIPTION_CHANGED, {"channel": ch, "old": old, "new": new, "source": source}, now)
        for c, ch, old, new in changes
    ]


def set_subscriptions(*, changes: list[tuple[int, str, str]], source: str = "api") -> int:
    """Set (customer_id, channel, status) for each change; the last change of
    a (customer, channel) in the batch wins. Emits `subscription_changed`
    {"channel", "old", "new", "source"} only for real changes and returns how
    many there were. `source` says where the change came from (api, admin,
    unsubscribe_link, import, …)."""
    errors = _Errors()
    wanted: dict[tuple[int, str], str] = {}
    for index, change in enumerate(changes):
        if not (isinstance(change, tuple | list) and len(change) == 3):
            errors.add(index, "", "must be (customer_id, channel, status)")
            continue
        customer_id, channel, status = change
        if not _is_int(customer_id):
            errors.add(index, "customer_id", "must be an integer")
        elif channel not in CHANNELS:
            errors.add(index, "channel", f"unknown channel {channel!r} (one of {CHANNELS})")
        elif status not in SUBSCRIPTION_STATUSES:
            errors.add(index, "status", f"unknown status {status!r} (one of {SUBSCRIPTION_STATUSES})")
        else:
            wanted.pop((customer_id, channel), None)  # re-insert: the last change decides the order too
            wanted[(customer_id, channel)] = status
    if not isinstance(source, str) or not source:
        errors.add(0, "source", "must be a non-empty string")
    errors.raise_if_any()
    if not wanted:
        return 0
    now = timezone.now()
    with transaction.atomic():
        customer_ids = {customer_id for customer_id, _ in wanted}
        locked = set(
            Customer.objects.select_for_update()
            .filter(id__in=_in(customer_ids))
            .order_by("id")
            .values_list("id", flat=True)
        )
        if customer_ids - locked:
            for index, change in enumerate(changes):
                if change[0] not in locked:
                    errors.add(index, "customer_id", f"customer {change[0]} does not exist")
            errors.raise_if_any()
        events = _change_subscriptions(wanted, now=now, source=source)
        _insert_events(events, now=now)
    return len(events)


# --- Fields ---------------------------------------------------------------------


def _clean_field_name(field: Any) -> str:
    if not isinstance(field, str) or not field.strip():
        raise InvalidInput([{"field": "field", "message": "must be a non-empty string"}])
    if '"' in field or "\\" in field or len(field) > 200 or text_problem(field):
        # SQLite's JSON path cannot quote these; a rule could not name them either.
        raise InvalidInput(
            [{"field": "field", "message": 'must be valid text without ", \\ or NUL, at most 200 characters'}]
        )
    return field


def set_field_values(*, field: str, values: dict[int, Any]) -> int:
    """Set one attribute to a per-customer value ({customer_id: value}) in one
    statement. `field` is a profile attribute (email, phone, first_name,
    last_name, timezone — validated like in upsert_customers) or else a key
    of Customer.fields (any JSON value; other keys stay). Returns the number
    of customers updated (unknown ids are skipped)."""
    field = _clean_field_name(field)
    if not values:
        return 0
    _require_int_ids(values)
    table = Customer._meta.db_table
    now = _db_datetime(timezone.now())
    if field in _PROFILE_CLEANERS:
        errors = _Errors()
        clean: list[dict[str, Any]] = []
        for index, (customer_id, value) in enumerate(values.items()):
            try:
                clean.append({"id": customer_id, "value": _PROFILE_CLEANERS[field](value)})
            except ValueError as exc:
                errors.add(index, field, str(exc))
        errors.raise_if_any()
        # In id order, like the FOR UPDATE of upsert_customers: fewer lock-order deadlocks.
        rows = _Rows({"id": "int", "value": "text"}, sorted(clean, key=lambda row: row["id"]))
        assignments = f'"{field}" = r.value'
        params: list[Any] = [now]
        if field == "email":
            # A new address has not bounced yet.
            assignments += (
                f", email_valid = CASE WHEN {table}.email = r.value THEN {table}.email_valid ELSE %s END"
            )
            params.insert(0, True)
        return _execute(
            f"UPDATE {table} SET {assignments}, updated_at = %s FROM {rows.sql} WHERE {table}.id = r.id",
            [*params, rows.param],
        )
    errors = _Errors()
    encoded: list[dict[str, Any]] = []
    for index, (customer_id, value) in enumerate(values.items()):
        # Checked as the key of the fields object it lands in: fields nest at most 32 levels.
        problems = json_problems({field: value})
        for path, message in problems:
            errors.add(index, path or field, message)
        if not problems:
            try:
                encoded.append({"id": customer_id, "value": _json_text(value)})
            except ValueError as exc:
                errors.add(index, field, str(exc))
    errors.raise_if_any()
    rows = _Rows({"id": "int", "value": "text"}, sorted(encoded, key=lambda row: row["id"]))
    merged = _json_object_with_key_sql(f"{table}.fields", "r.value")
    return _execute(
        f"UPDATE {table} SET fields = {merged}, updated_at = %s FROM {rows.sql} WHERE {table}.id = r.id",
        [field, now, rows.param],
    )


def set_field(*, customer_ids: list[int], field: str, value: Any) -> int:
    """The set_field step: the same value for every customer (see set_field_values)."""
    return set_field_values(field=field, values=dict.fromkeys(customer_ids, value))


# --- Segments -------------------------------------------------------------------


def _static_segment_id(slug: str) -> int:
    found = Segment.objects.filter(slug=slug).values_list("id", "kind").first()
    if found is None:
        raise UnknownSegment(slug)
    if found[1] != Segment.Kind.STATIC:
        raise SegmentNotStatic(slug)
    return found[0]


def add_to_segment(*, slug: str, customer_ids: list[int]) -> int:
    """Add customers to a static segment; returns how many were not members
    yet. Unknown customer ids are skipped."""
    _require_int_ids(customer_ids)
    segment_id = _static_segment_id(slug)
    if not customer_ids:
        return 0
    ids_sql, ids_params = _value_set_sql(customer_ids)
    return _execute(
        f"""
        INSERT INTO {SegmentMembership._meta.db_table} (segment_id, customer_id, added_at)
        SELECT %s, c.id, %s FROM {Customer._meta.db_table} c WHERE c.id IN ({ids_sql}) ORDER BY c.id
        ON CONFLICT (segment_id, customer_id) DO NOTHING
        """,
        [segment_id, _db_datetime(timezone.now()), *ids_params],
    )


def remove_from_segment(*, slug: str, customer_ids: list[int]) -> int:
    """Remove customers from a static segment; returns how many were members."""
    _require_int_ids(customer_ids)
    segment_id = _static_segment_id(slug)
    if not customer_ids:
        return 0
    # No dependent rows or signals: Django deletes with one DELETE statement.
    deleted, _ = SegmentMembership.objects.filter(
        segment_id=segment_id, customer_id__in=_in(customer_ids)
    ).delete()
    return deleted


# --- Points -----------------------------------------------------------------------


def points_amount_problem(amount: Any) -> str | None:
    """A points amount: a non-zero integer the ledger's integer column holds.
    The one check, used here and by the flow's points step when it is saved."""
    if not _is_int(amount) or amount == 0:
        return "must be a non-zero integer (negative to deduct)"
    if abs(amount) > sql.MAX_INT:
        return f"must be between -{sql.MAX_INT:,} and {sql.MAX_INT:,}"
    return None


def grant_points(*, entries: list[dict[str, Any]]) -> int:
    """Write points entries {customer_id, amount (± int, not 0), reason,
    expires_at (aware datetime | None), source_key (str | None)}; an entry
    whose source_key is already stored (or repeated in the batch) is skipped,
    so a retried step grants once. Returns the number of entries written."""
    errors = _Errors()
    allowed = {"customer_id", "amount", "reason", "expires_at", "source_key"}
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            errors.add(index, "", "must be an object")
            continue
        for key in sorted(entry.keys() - allowed):
            errors.add(index, key, "unknown attribute")
        if not _is_int(entry.get("customer_id")):
            errors.add(index, "customer_id", "must be an integer")
        amount = entry.get("amount")
        if message := points_amount_problem(amount):
            errors.add(index, "amount", message)
        try:
            reason = _clean_reason(entry.get("reason"))
        except ValueError as exc:
            errors.add(index, "reason", str(exc))
            reason = ""
        expires_at = entry.get("expires_at")
        if expires_at is not None and not _is_aware(expires_at):
            errors.add(index, "expires_at", "must be a datetime with a time zone, or null")
        source_key = entry.get("source_key")
        if source_key is not None:
            try:
                source_key = _clean_source_key(source_key)
            except ValueError as exc:
                errors.add(index, "source_key", str(exc))
        if source_key is not None and source_key in seen:
            continue
        if source_key is not None:
            seen.add(source_key)
        clean.append(
            {
                "customer_id": entry.get("customer_id"),
                "amount": amount,
                "reason": reason,
                "expires_at": expires_at,
                "source_key": source_key,
            }
        )
    errors.raise_if_any()
    if not clean:
        return 0
    _report_missing_customers(clean, lambda entry: entry["customer_id"])
    rows = _Rows(
        {
            "customer_id": "int",
            "amount": "int",
            "reason": "text",
            "expires_at": "datetime",
            "source_key": "text",
        },
        clean,
    )
    return _execute(
        f"""
        INSERT INTO {PointsEntry._meta.db_table} (customer_id, amount, reason, created_at, expires_at, source_key)
        SELECT r.customer_id, r.amount, r.reason, %s, r.expires_at, r.source_key
        FROM {rows.sql} WHERE true
        ORDER BY r.source_key
        ON CONFLICT (source_key) DO NOTHING
        """,
        [_db_datetime(timezone.now()), rows.param],
    )


def points_balances(*, customer_ids: list[int]) -> dict[int, int]:
    """customer id -> balance now (0 without active entries); the query is
    customers.selectors.points_balances."""
    totals = selectors.points_balances(customer_ids=customer_ids, at=timezone.now())
    return {customer_id: totals.get(customer_id, 0) for customer_id in customer_ids}


# --- Promo codes -----------------------------------------------------------------


def _pool_id(slug: str) -> int:
    pool_id = PromoPool.objects.filter(slug=slug).values_list("id", flat=True).first()
    if pool_id is None:
        raise UnknownPromoPool(slug)
    return pool_id


# Namespace of the transaction-level advisory locks on issue keys (ASCII "prom").
_ISSUE_KEY_LOCKS = 0x70726F6D


def _lock_issue_keys(keys: Iterable[str]) -> None:
    """Serialize workers issuing the same keys (PostgreSQL only; SQLite has one
    writer). Without it, a worker that found the pool short could answer None
    for a key another worker is issuing at that very moment. Locks are taken
    in key order, so two workers never wait on each other in a cycle."""
    if connection.vendor != "postgresql":
        return
    keys_sql, keys_params = _value_set_sql(sorted(keys), kind="text")
    _fetch(
        f"SELECT pg_advisory_xact_lock(%s, hashtext(k)) FROM ({keys_sql}) AS keys(k) ORDER BY k",
        [_ISSUE_KEY_LOCKS, *keys_params],
    )


def _claim_and_issue(pool_id: int, wanted: dict[str, int]) -> dict[str, str | None]:
    now = timezone.now()
    _lock_issue_keys(wanted)
    issued = dict(
        PromoCode.objects.filter(issue_key__in=_in(wanted, kind="text")).values_list("issue_key", "code")
    )
    todo = [(key, customer_id) for key, customer_id in wanted.items() if key not in issued]
    if todo:
        # SKIP LOCKED: parallel workers take different free codes instead of
        # queueing behind each other; a code locked here is ours until commit.
        # SQLite ignores the lock (one writer, and the transaction is IMMEDIATE).
        claimed = list(
            PromoCode.objects.select_for_update(skip_locked=True)
            .filter(pool_id=pool_id, issued_at__isnull=True)
            .order_by("id")
            .values_list("id", "code")[: len(todo)]
        )
        pairs = [
            {"id": code_id, "customer_id": customer_id, "issue_key": key, "code": code}
            for (code_id, code), (key, customer_id) in zip(claimed, todo)
        ]
        if pairs:
            rows = _Rows({"id": "int", "customer_id": "int", "issue_key": "text"}, pairs)
            table = PromoCode._meta.db_table
            updated = _execute(
                f"""
                UPDATE {table} SET customer_id = r.customer_id, issue_key = r.issue_key, issued_at = %s
                FROM {rows.sql} WHERE {table}.id = r.id AND {table}.issued_at IS NULL
                """,
                [_db_datetime(now), rows.param],
            )
            if updated != len(pairs):  # cannot happen while we hold the row locks
                raise RuntimeError(f"claimed {len(pairs)} promo codes but issued {updated}")
            issued.update((pair["issue_key"], pair["code"]) for pair in pairs)
    return {key: issued.get(key) for key in wanted}


def issue_promo_codes(*, pool_slug: str, requests: list[tuple[int, str]]) -> dict[str, str | None]:
    """Issue one free code of the pool per (customer_id, issue_key).

    Returns issue_key -> code, or None when the pool ran out (the caller fails
    that step with reason "promo_pool_empty"). A key issued before gets the
    same code again, so a retried step never takes a second code; no code ever
    goes to two customers, also with many workers in parallel. Codes go out in
    upload order (by id).

    Parallel workers skip the codes others have locked (SKIP LOCKED) instead
    of waiting; so when the last free codes are held by another worker's open
    transaction the answer is None, even if that transaction later rolls back."""
    errors = _Errors()
    wanted: dict[str, int] = {}
    for index, request in enumerate(requests):
        if not (isinstance(request, tuple | list) and len(request) == 2):
            errors.add(index, "", "must be (customer_id, issue_key)")
            continue
        customer_id, key = request
        if not _is_int(customer_id):
            errors.add(index, "customer_id", "must be an integer")
            continue
        try:
            key = _clean_issue_key(key)
        except ValueError as exc:
            errors.add(index, "issue_key", str(exc))
            continue
        if wanted.setdefault(key, customer_id) != customer_id:
            errors.add(index, "issue_key", f"issue key {key!r} given for two different customers")
    errors.raise_if_any()
    pool_id = _pool_id(pool_slug)
    if not wanted:
        return {}
    _report_missing_customers(list(wanted.values()), lambda customer_id: customer_id)
    attempts = 3
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                return _claim_and_issue(pool_id, wanted)
        except IntegrityError:
            # Only a writer that bypasses the key locks (not this module) can
            # issue one of these keys between our read and our write; the unique
            # issue_key stops it, and its codes are committed now: read again.
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def add_promo_codes(*, pool_slug: str, codes: list[str]) -> dict[str, int]:
    """Bulk upload codes to a pool; codes already in it (or repeated in the
    upload) are ignored. Returns {"added", "duplicates"}."""
    errors = _Errors()
    clean: dict[str, None] = {}
    for index, code in enumerate(codes):
        try:
            clean[_clean_code(code)] = None
        except ValueError as exc:
            errors.add(index, "code", str(exc))
    errors.raise_if_any()
    pool_id = _pool_id(pool_slug)
    if not clean:
        return {"added": 0, "duplicates": len(codes)}
    rows = _Rows({"code": "text"}, ({"code": code} for code in clean))
    added = _execute(
        f"""
        INSERT INTO {PromoCode._meta.db_table} (pool_id, code, created_at)
        SELECT %s, r.code, %s FROM {rows.sql} WHERE true
        ORDER BY r.code
        ON CONFLICT (pool_id, code) DO NOTHING
        """,
        [pool_id, _db_datetime(timezone.now()), rows.param],
    )
    return {"added": added, "duplicates": len(codes) - added}


def pool_available(*, slugs: list[str]) -> dict[str, int]:
    """slug -> number of codes not issued yet; unknown slugs count 0 (a rule
    naming a deleted pool sees an empty pool rather than failing)."""
    counts = selectors.free_code_counts(pool_slugs=slugs)
    return {slug: counts.get(slug, 0) for slug in slugs}
