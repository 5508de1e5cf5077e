"""Privacy: erase a customer (right to be forgotten) and export their data.

It lives in `flows` because it touches every app's records of a person (runs
and node passes are flows' records; customers must never import flows).

Erasing keeps the customer row (so foreign keys, launch counts and aggregate
statistics stay consistent) but removes everything that identifies or
describes the person:

- profile: external id (→ "erased-<pk>"), email, phone, names, time zone,
  fields, push tokens; subscriptions and static segment memberships deleted;
- events: payloads emptied;
- messages: rendered contents, context and provider answers emptied; the
  reason keeps its code only (an SMTP refusal can quote the address); those
  not sent yet become not_sent ("unsubscribed: the customer was erased");
- activity: the NodePass rows of the customer's runs deleted; runs still in
  flight stopped (reason "erased") and their limitation places given back;
- the admin's change history of that customer: its text emptied.

NodeStat (hourly aggregates) is untouched. An audit entry records who erased
which customer id, and nothing else about the person.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from channels.models import Message
from customers.models import (
    Customer,
    Event,
    PointsEntry,
    PromoCode,
    SegmentMembership,
    Subscription,
)
from customers.selectors import profile_values
from customers.services.points import points_balances
from flows.models import NodePass, Run
from flows.nodes.limitation import release_reservations
from maestra.audit import log as audit

ERASED_ACTION = "customer.erased"
ERASED_STOP_REASON = "erased"
# The reason of messages that were waiting to be sent (channels.outbox.Reason).
ERASED_MESSAGE_REASON = "unsubscribed: the customer was erased"


ERASED_PREFIX = "erased-"


def erased_external_id(customer_id: int) -> str:
    return f"{ERASED_PREFIX}{customer_id}"


def erase_customers(*, customer_ids: list[int], user=None) -> int:
    """Erase the customers' personal data (see the module docstring), in one
    transaction and a bounded number of queries. Returns how many customers
    were erased (unknown ids are skipped)."""
    if not customer_ids:
        return 0
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            Customer.objects.select_for_update()
            .filter(id__in=set(customer_ids))
            .order_by("id")
            .values_list("id", flat=True)
        )
        if not ids:
            return 0
        Customer.objects.filter(id__in=ids).update(
            # external_id is unique: each customer gets its own placeholder.
            external_id=Concat(Value(ERASED_PREFIX), Cast("id", output_field=CharField())),
            email="",
            email_valid=True,
            phone="",
            first_name="",
            last_name="",
            timezone="",
            locale="",
            fields={},
            push_tokens={},
            updated_at=now,
        )
        Subscription.objects.filter(customer_id__in=ids).delete()
        SegmentMembership.objects.filter(customer_id__in=ids).delete()
        Event.objects.filter(customer_id__in=ids).update(payload={})
        PointsEntry.objects.filter(customer_id__in=ids).update(reason="")

        Message.objects.filter(customer_id__in=ids).update(rendered={}, context={}, response_body="")
        detailed = [
            Message(id=message_id, reason=reason.split(":", 1)[0])
            for message_id, reason in Message.objects.filter(
                customer_id__in=ids, reason__contains=":"
            ).values_list("id", "reason")
        ]
        Message.objects.bulk_update(detailed, ["reason"], batch_size=1000)
        # Nothing queued for the person goes out any more. A row a delivery
        # worker has claimed is covered too: the worker marks a row `sending`
        # only while it is still `claimed` (channels/delivery.py).
        Message.objects.filter(
            customer_id__in=ids, status__in=[Message.Status.QUEUED, Message.Status.CLAIMED]
        ).update(status=Message.Status.NOT_SENT, reason=ERASED_MESSAGE_REASON, lease_until=None)

        in_flight = list(
            Run.objects.select_for_update()
            .filter(customer_id__in=ids, status__in=[Run.Status.ACTIVE, Run.Status.WAITING])
            .order_by("id")
            .values_list("id", flat=True)
        )
        if in_flight:
            Run.objects.filter(id__in=in_flight).update(
                status=Run.Status.STOPPED, stop_reason=ERASED_STOP_REASON, due_at=None, ended_at=now
            )
            release_reservations(run_ids=in_flight)
        NodePass.objects.filter(run__customer_id__in=ids).delete()

        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Customer), object_id__in=[str(i) for i in ids]
        ).update(object_repr="(erased)", change_message="")

        # The subject by its key alone: the row is kept, but says nothing any more.
        audit.log_many(
            audit.entry(
                ERASED_ACTION,
                user=user,
                at=now,
                subject=Customer(pk=customer_id),
                data={"customer_id": customer_id},
            )
            for customer_id in ids
        )
    return len(ids)


def erase_customer(*, customer: Customer, user=None) -> None:
    erase_customers(customer_ids=[customer.pk], user=user)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def export_customer(*, customer: Customer) -> dict[str, Any]:
    """Everything stored about one customer, as JSON-ready data."""
    runs = list(
        Run.objects.filter(customer=customer)
        .select_related("flow")
        .order_by("entered_at", "id")
        .values("id", "flow_id", "flow__name", "status", "entered_at", "ended_at", "stop_reason", "is_test")
    )
    passes: dict[int, list[dict]] = {}
    for row in (
        NodePass.objects.filter(run__customer=customer)
        .order_by("run_id", "pass_no")
        .values("run_id", "node_key", "kind", "at", "port")
    ):
        passes.setdefault(row["run_id"], []).append(
            {"key": row["node_key"], "kind": row["kind"], "at": _iso(row["at"]), "port": row["port"]}
        )
    return {
        "format": "maestra.customer-export/1",
        "exported_at": timezone.now().isoformat(),
        "profile": {
            **profile_values(customer),
            "fields": customer.fields,
            "push_tokens": customer.push_tokens,
            "created_at": _iso(customer.created_at),
            "updated_at": _iso(customer.updated_at),
        },
        "subscriptions": {
            channel: {"status": status, "updated_at": _iso(updated)}
            for channel, status, updated in Subscription.objects.filter(customer=customer).values_list(
                "channel", "status", "updated_at"
            )
        },
        "segments": sorted(
            SegmentMembership.objects.filter(customer=customer).values_list("segment__slug", flat=True)
        ),
        "points_balance": points_balances(customer_ids=[customer.pk])[customer.pk],
        "points": [
            {
                "amount": e["amount"],
                "reason": e["reason"],
                "created_at": _iso(e["created_at"]),
                "expires_at": _iso(e["expires_at"]),
            }
            for e in PointsEntry.objects.filter(customer=customer)
            .order_by("created_at", "id")
            .values("amount", "reason", "created_at", "expires_at")
        ],
        "promo_codes": [
            {"pool": p["pool__slug"], "code": p["code"], "issued_at": _iso(p["issued_at"])}
            for p in PromoCode.objects.filter(customer=customer)
            .order_by("issued_at", "id")
            .values("pool__slug", "code", "issued_at")
        ],
        "events": [
            {
                "id": e["external_id"],
                "type": e["type"],
                "occurred_at": _iso(e["occurred_at"]),
                "payload": e["payload"],
            }
            for e in Event.objects.filter(customer=customer)
            .order_by("occurred_at", "id")
            .values("external_id", "type", "occurred_at", "payload")
        ],
        "messages": [
            {
                "id": m["id"],
                "channel": m["channel"],
                "template": m["template_slug"],
                "status": m["status"],
                "reason": m["reason"],
                "created_at": _iso(m["created_at"]),
                "sent_at": _iso(m["sent_at"]),
                "content": {k: v for k, v in (m["rendered"] or {}).items() if k != "test_verdict"},
                "is_test": m["is_test"],
            }
            for m in Message.objects.filter(customer=customer)
            .order_by("created_at", "id")
            .values(
                "id",
                "channel",
                "template_slug",
                "status",
                "reason",
                "created_at",
                "sent_at",
                "rendered",
                "is_test",
            )
        ],
        "runs": [
            {
                "id": r["id"],
                "flow": r["flow__name"],
                "status": r["status"],
                "entered_at": _iso(r["entered_at"]),
                "ended_at": _iso(r["ended_at"]),
                "stop_reason": r["stop_reason"],
                "is_test": r["is_test"],
                "nodes": passes.get(r["id"], []),
            }
            for r in runs
        ],
    }
