"""Subscriptions: one status per customer and channel. Every real change
emits subscription_changed {"channel", "old", "new", "source"}; a change made
by staff (the admin's customer page passes `user`) is also written to the
audit log as subscription.changed, naming who made it. The other sources
(API, links, inbound provider events, imports) are told apart by the event's
`source` alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from customers.audit import SUBSCRIPTION_CHANGED_ACTION
from customers.models import Customer, Subscription
from customers.services._support import CHANNELS, SUBSCRIPTION_STATUSES, Errors, Rows, execute, is_int
from customers.services.events import SUBSCRIPTION_CHANGED, insert_events, own_event
from maestra import sql
from maestra.audit import log as audit


def change_subscriptions(
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
            customer_id__in=sql.in_values({customer_id for customer_id, _ in wanted})
        ).values_list("customer_id", "channel", "status")
    }
    changes = [
        (customer_id, channel, current.get((customer_id, channel)), status)
        for (customer_id, channel), status in wanted.items()
        if current.get((customer_id, channel)) != status
    ]
    if not changes:
        return []
    rows = Rows(
        {"customer_id": "int", "channel": "text", "status": "text"},
        ({"customer_id": c, "channel": ch, "status": new} for c, ch, _old, new in changes),
    )
    execute(
        f"""
        INSERT INTO {Subscription._meta.db_table} (customer_id, channel, status, updated_at)
        SELECT r.customer_id, r.channel, r.status, %s FROM {rows.sql} WHERE true
        ON CONFLICT (customer_id, channel) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at
        """,
        [sql.db_value(now), rows.param],
    )
    return [
        own_event(c, SUBSCRIPTION_CHANGED, {"channel": ch, "old": old, "new": new, "source": source}, now)
        for c, ch, old, new in changes
    ]


def set_subscriptions(*, changes: list[tuple[int, str, str]], source: str = "api", user=None) -> int:
    """Set (customer_id, channel, status) for each change; the last change of
    a (customer, channel) in the batch wins. Emits `subscription_changed`
    {"channel", "old", "new", "source"} only for real changes and returns how
    many there were. `source` says where the change came from (api, admin,
    unsubscribe_link, import, …). With `user` (staff in the admin), each real
    change is also audited as `subscription.changed` with the same data, in
    the same transaction."""
    errors = Errors()
    wanted: dict[tuple[int, str], str] = {}
    for index, change in enumerate(changes):
        if not (isinstance(change, tuple | list) and len(change) == 3):
            errors.add(index, "", "must be (customer_id, channel, status)")
            continue
        customer_id, channel, status = change
        if not is_int(customer_id):
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
            .filter(id__in=sql.in_values(customer_ids))
            .order_by("id")
            .values_list("id", flat=True)
        )
        if customer_ids - locked:
            for index, change in enumerate(changes):
                if change[0] not in locked:
                    errors.add(index, "customer_id", f"customer {change[0]} does not exist")
            errors.raise_if_any()
        events = change_subscriptions(wanted, now=now, source=source)
        insert_events(events, now=now)
        if user is not None:
            audit.log_many(
                audit.entry(
                    SUBSCRIPTION_CHANGED_ACTION,
                    user=user,
                    at=now,
                    subject=Customer(pk=event["customer_id"]),
                    data=event["payload"],
                )
                for event in events
            )
    return len(events)
