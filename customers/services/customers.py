"""Customers: creating and updating profiles by external id, in batches
(the API, the import command, event ingestion). New customers emit
customer_created; subscriptions given with a profile go through
customers/services/subscriptions.py and emit subscription_changed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from customers.errors import CustomerServiceError, InvalidInput
from customers.locales import normalize_locale
from customers.models import Customer
from customers.services._support import (
    CHANNELS,
    SUBSCRIPTION_STATUSES,
    Errors,
    Rows,
    clean_unique,
    execute,
    fetch,
    json_object_problems,
    max_length,
    text_cleaner,
)
from customers.services.events import CUSTOMER_CREATED, insert_events, own_event
from customers.services.subscriptions import change_subscriptions
from maestra import sql
from maestra.zones import known_zones

# Profile attributes that upsert_customers and set_field write as columns;
# every other name is a key of Customer.fields.
PROFILE_ATTRIBUTES = ("email", "phone", "first_name", "last_name", "timezone", "locale")


_clean_email_text = text_cleaner(max_length(Customer, "email"))
_clean_timezone_text = text_cleaner(max_length(Customer, "timezone"))


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
PROFILE_CLEANERS: dict[str, Callable[[Any], str]] = {
    "email": _clean_email,
    "phone": text_cleaner(max_length(Customer, "phone")),
    "first_name": text_cleaner(max_length(Customer, "first_name")),
    "last_name": text_cleaner(max_length(Customer, "last_name")),
    "timezone": _clean_timezone,
    "locale": normalize_locale,
}
_clean_external_id = text_cleaner(max_length(Customer, "external_id"), required=True)


class UpsertResult(dict[str, int]):
    """external_id -> customer id, in the order of the input; also says which
    external ids were `created` and which existing ones `changed`."""

    def __init__(self, ids: dict[str, int], *, created: set[str], changed: set[str]) -> None:
        super().__init__(ids)
        self.created = created
        self.changed = changed


# The profile columns an insert and an update both write.
_PROFILE_COLUMNS = {
    "email": "text",
    "email_valid": "bool",
    "phone": "text",
    "first_name": "text",
    "last_name": "text",
    "timezone": "text",
    "locale": "text",
    "fields": "json",
}
_CUSTOMER_INSERT_COLUMNS = {"external_id": "text", **_PROFILE_COLUMNS, "push_tokens": "json"}


def _insert_customers(profiles: list[dict[str, Any]], *, now: datetime) -> dict[str, int]:
    """Insert the customers whose external id is not taken yet; return
    external_id -> id of those this call inserted (a concurrent transaction
    inserting the same id wins, and the row is left to the update path)."""
    if not profiles:
        return {}
    rows = Rows(
        _CUSTOMER_INSERT_COLUMNS,
        (
            {
                "email": "",
                "phone": "",
                "first_name": "",
                "last_name": "",
                "timezone": "",
                "locale": "",
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
    stamp = sql.db_value(now)
    returned = fetch(
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
    errors = Errors()
    merged: dict[str, dict[str, Any]] = {}
    allowed = {"external_id", "fields", "subscriptions", *PROFILE_ATTRIBUTES}
    for index, row in enumerate(rows):
        if not errors.check_object(index, row, allowed):
            continue
        try:
            external_id = _clean_external_id(row.get("external_id"))
        except ValueError as exc:
            errors.add(index, "external_id", str(exc))
            continue
        target = merged.setdefault(external_id, {"attributes": {}, "fields": {}, "subscriptions": {}})
        for name, cleaner in PROFILE_CLEANERS.items():
            if name in row:
                try:
                    target["attributes"][name] = cleaner(row[name])
                except ValueError as exc:
                    errors.add(index, name, str(exc))
        if "fields" in row:
            problems = json_object_problems(row["fields"], "fields")
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


_CUSTOMER_UPDATE_COLUMNS = {"id": "int", **_PROFILE_COLUMNS}


def upsert_customers(*, rows: list[dict[str, Any]], source: str = "api") -> UpsertResult:
    """Create or update customers by external id.

    A row is {"external_id", "email"?, "phone"?, "first_name"?, "last_name"?,
    "timezone"? (IANA), "locale"? (BCP 47), "fields"?: {...}, "subscriptions"?: {channel: status}}.
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
                .filter(external_id__in=sql.in_values(not_created, kind="text"))
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
            rows_sql = Rows(_CUSTOMER_UPDATE_COLUMNS, updates)
            table = Customer._meta.db_table
            assignments = ", ".join(
                f'"{name}" = r."{name}"' for name in _CUSTOMER_UPDATE_COLUMNS if name != "id"
            )
            execute(
                f"UPDATE {table} SET {assignments}, updated_at = %s FROM {rows_sql.sql} WHERE {table}.id = r.id",
                [sql.db_value(now), rows_sql.param],
            )

        events = [own_event(ids[external_id], CUSTOMER_CREATED, {}, now) for external_id in created]
        subscription_events = change_subscriptions(
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
        insert_events(events + subscription_events, now=now)
    return UpsertResult({x: ids[x] for x in merged}, created=set(created), changed=changed)


def ensure_customers(*, external_ids: list[str]) -> dict[str, int]:
    """external_id -> id for each given id, creating the missing customers
    (each new one emits `customer_created`). Used by event ingestion: an event
    for an unknown customer creates the customer."""
    unique = clean_unique(external_ids, "external_id", _clean_external_id)
    if not unique:
        return {}
    now = timezone.now()
    with transaction.atomic():
        created = _insert_customers([{"external_id": x} for x in unique], now=now)
        rest = [x for x in unique if x not in created]
        ids = dict(created)
        if rest:
            ids.update(
                Customer.objects.filter(external_id__in=sql.in_values(rest, kind="text")).values_list(
                    "external_id", "id"
                )
            )
        insert_events([own_event(ids[x], CUSTOMER_CREATED, {}, now) for x in created], now=now)
    return {x: ids[x] for x in unique}
