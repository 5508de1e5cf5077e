"""Events: storing the events integrations send and the ones flows emit,
plus the product's own (customer_created, subscription_changed), stored as
unprocessed Event rows that the flows engine sweeps and matches against
flows. This package never imports flows."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from customers.errors import InvalidInput
from customers.models import Event
from customers.services._support import (
    Errors,
    Rows,
    fetch,
    is_aware,
    is_int,
    json_object_problems,
    max_length,
    report_missing_customers,
    text_cleaner,
)
from maestra import sql
from maestra.wake import ENGINE, wake

logger = logging.getLogger(__name__)

CUSTOMER_CREATED = "customer_created"
SUBSCRIPTION_CHANGED = "subscription_changed"

_clean_event_external_id = text_cleaner(max_length(Event, "external_id"), required=True)
_clean_event_type = text_cleaner(max_length(Event, "type"), required=True)


_EVENT_COLUMNS = {
    "ord": "int",
    "external_id": "text",
    "customer_id": "int",
    "type": "text",
    "occurred_at": "datetime",
    "payload": "json",
    "depth": "int",
}


def insert_events(events: list[dict[str, Any]], *, now: datetime) -> list[int]:
    """Insert validated events, skipping external ids already stored; return
    the new ids. Rows go in ordered by external id so two batches racing for
    the same ids take their locks in the same order (no deadlock); `ord`
    keeps the batch's own order among the rest."""
    if not events:
        return []
    rows = Rows(_EVENT_COLUMNS, ({**event, "ord": index} for index, event in enumerate(events)))
    table = Event._meta.db_table
    returned = fetch(
        f"""
        INSERT INTO {table} (external_id, customer_id, "type", occurred_at, received_at, payload, depth)
        SELECT r.external_id, r.customer_id, r."type", r.occurred_at, %s, r.payload, r.depth
        FROM {rows.sql} WHERE true
        ORDER BY r.external_id, r.ord
        ON CONFLICT (external_id) DO NOTHING
        RETURNING id
        """,
        [sql.db_value(now), rows.param],
    )
    if returned:
        # The engine matches them right after the commit (maestra/wake/):
        # ingestion, customer upserts and their system events, emit steps.
        wake(ENGINE)
    return sorted(row[0] for row in returned)


def own_event(customer_id: int, event_type: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "external_id": None,
        "customer_id": customer_id,
        "type": event_type,
        "occurred_at": now,
        "payload": payload,
        "depth": 0,
    }


# What an event given to store_events may have.
_EVENT_ATTRIBUTES = frozenset({"external_id", "customer_id", "type", "occurred_at", "payload"})


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
    if not is_int(depth) or depth < 0:
        raise InvalidInput([{"field": "depth", "message": "must be an integer >= 0"}])
    errors = Errors()
    clean: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if not errors.check_object(index, event, _EVENT_ATTRIBUTES):
            continue
        external_id = errors.clean_optional(index, event, "external_id", _clean_event_external_id)
        if not is_int(event.get("customer_id")):
            errors.add(index, "customer_id", "must be an integer")
        try:
            event_type = _clean_event_type(event.get("type"))
        except ValueError as exc:
            errors.add(index, "type", str(exc))
            event_type = ""
        if not is_aware(event.get("occurred_at")):
            errors.add(index, "occurred_at", "must be a datetime with a time zone")
        payload = event.get("payload", {})
        for field, message in json_object_problems(payload, "payload"):
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

    report_missing_customers(clean, lambda event: event["customer_id"])
    seen: set[str] = set()
    unique: list[dict[str, Any]] = []
    for event in clean:
        if event["external_id"] is not None:
            if event["external_id"] in seen:
                continue
            seen.add(event["external_id"])
        unique.append(event)
    ids = insert_events(unique, now=timezone.now())
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
