"""Event ingestion: the ONE way events from outside enter Maestra (the REST
API's POST /api/v1/events and the import_events command).

An item is {"id", "customer", "type", "occurred_at", "payload"?}:
- `id`: the integration's event id, required — it makes ingestion idempotent
  (an id already stored, or repeated within the batch, is a duplicate and
  ignored), so a client can always retry a batch safely;
- `customer`: the customer's external id; an unknown customer is created
  (SPEC §8), with its `customer_created` event;
- `type`: the event type flows start on;
- `occurred_at`: ISO 8601 with a UTC offset (a naive time is refused: nobody
  could tell which moment it means), not before 1970 nor more than
  FUTURE_TOLERANCE ahead of the server clock;
- `payload`: a JSON object (default {}).

A batch is all or nothing: any invalid item -> customers.services.InvalidInput
listing every problem as {"index", "field", "message"}, and nothing stored.
Storing the events wakes the engine (maestra/wake/, from
customers.services.events): right after the batch commits, a running cluster
matches them (the periodic sweep and flows_tick would find them anyway).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from customers.errors import InvalidInput
from customers.models import Customer, Event
from customers.services.customers import ensure_customers
from customers.services.events import store_events

MAX_EVENTS = 1000
# Clocks of clients and servers drift; an event from the far future is a bug.
FUTURE_TOLERANCE = timedelta(hours=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
ITEM_KEYS = ("id", "customer", "type", "occurred_at", "payload")

_MAX_ID = Event._meta.get_field("external_id").max_length
_MAX_CUSTOMER = Customer._meta.get_field("external_id").max_length
_MAX_TYPE = Event._meta.get_field("type").max_length


def _text_problem(value: Any, max_length: int) -> str | None:
    if value is None:
        return "required"
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must not be empty"
    if len(value.strip()) > max_length:
        return f"must be at most {max_length} characters"
    return None


def parse_occurred_at(value: Any, *, now: datetime) -> datetime:
    """An aware datetime from an ISO 8601 string (or an aware datetime);
    ValueError with a message for anything else."""
    if value is None:
        raise ValueError("required")
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{value[:40]!r} is not an ISO 8601 date-time (e.g. 2025-06-06T20:00:00+02:00)"
            ) from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise ValueError("must be an ISO 8601 date-time string")
    if timezone.is_naive(moment):
        raise ValueError("has no UTC offset; add one (Z, +02:00, ...) so the moment is unambiguous")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if moment < EARLIEST:
        raise ValueError("is before 1970")
    if moment > now + FUTURE_TOLERANCE:
        raise ValueError(f"is in the future (more than {FUTURE_TOLERANCE} ahead of the server clock)")
    return moment


def validate_items(items: Any) -> list[dict[str, Any]]:
    """The items as clean dicts {external_id, customer, type, occurred_at,
    payload}; InvalidInput listing every problem otherwise."""
    if not isinstance(items, list):
        raise InvalidInput([{"field": "events", "message": "must be a list of events"}])
    if len(items) > MAX_EVENTS:
        raise InvalidInput(
            [{"field": "events", "message": f"at most {MAX_EVENTS} events per batch (got {len(items)})"}]
        )
    now = timezone.now()
    errors: list[dict[str, Any]] = []
    clean: list[dict[str, Any]] = []

    def add(index: int, field: str, message: str) -> None:
        errors.append({"index": index, "field": field, "message": message})

    for index, item in enumerate(items):
        if not isinstance(item, dict):
            add(index, "", "must be an object")
            continue
        for key in item:
            if key not in ITEM_KEYS:
                add(index, str(key), f"unknown attribute (expected {', '.join(ITEM_KEYS)})")
        for field, limit in (("id", _MAX_ID), ("customer", _MAX_CUSTOMER), ("type", _MAX_TYPE)):
            problem = _text_problem(item.get(field), limit)
            if problem:
                add(index, field, problem)
        try:
            occurred_at = parse_occurred_at(item.get("occurred_at"), now=now)
        except ValueError as exc:
            add(index, "occurred_at", str(exc))
            occurred_at = None
        payload = item.get("payload", {})
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            add(index, "payload", "must be a JSON object")
        elif not all(isinstance(key, str) and key for key in payload):
            add(index, "payload", "keys must be non-empty strings")
        if not errors:
            clean.append(
                {
                    "external_id": item["id"].strip(),
                    "customer": item["customer"].strip(),
                    "type": item["type"].strip(),
                    "occurred_at": occurred_at,
                    "payload": payload,
                }
            )
    if errors:
        raise InvalidInput(errors)
    return clean


def ingest_events(*, items: list[dict]) -> dict[str, int]:
    """Validate and store a batch of events from outside; returns
    {"accepted", "duplicates"}. See the module docstring for the item shape."""
    clean = validate_items(items)
    if not clean:
        return {"accepted": 0, "duplicates": 0}
    with transaction.atomic():
        customer_ids = ensure_customers(external_ids=[item["customer"] for item in clean])
        result = store_events(
            events=[
                {
                    "external_id": item["external_id"],
                    "customer_id": customer_ids[item["customer"]],
                    "type": item["type"],
                    "occurred_at": item["occurred_at"],
                    "payload": item["payload"],
                }
                for item in clean
            ]
        )
    return {"accepted": result["accepted"], "duplicates": result["duplicates"]}
