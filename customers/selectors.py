"""The read side of customers that goes through the rule language: a
customer's profile as the API shows it (its rule segments are evaluated now).
The plain batch queries it builds on are customers/queries.py."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from customers import queries
from customers.models import Customer, Segment, SegmentMembership, Subscription
from customers.rules import RuleError, load_facts, validate_rule


def segment_slugs(customer_id: int) -> list[str]:
    """Static memberships plus the rule segments whose rule matches now, in a
    few queries whatever the number of segments (customers.rules.load_facts)."""
    rows = list(Segment.objects.order_by("slug").values_list("slug", "kind", "rule"))
    usable = [
        slug
        for slug, kind, rule in rows
        if kind == Segment.Kind.STATIC or not validate_rule(rule, allow_event=False)
    ]
    if usable:
        try:
            facts = load_facts({"field": "segment", "op": "in", "value": usable}, [customer_id])
            return sorted(facts[customer_id].segments)
        except RuleError:
            pass  # rule segments referring to each other: show the static memberships at least
    return sorted(
        SegmentMembership.objects.filter(customer_id=customer_id).values_list("segment__slug", flat=True)
    )


# The plain profile attributes, in the order the API and the export show them.
PROFILE_FIELDS = (
    "external_id",
    "email",
    "email_valid",
    "phone",
    "first_name",
    "last_name",
    "timezone",
    "locale",
)


def profile_values(customer: Customer) -> dict[str, Any]:
    return {name: getattr(customer, name) for name in PROFILE_FIELDS}


def customer_profile(customer: Customer) -> dict[str, Any]:
    """What the API shows of one customer: the profile, the subscription
    statuses, the points balance now and the segments the customer is in."""
    return {
        **profile_values(customer),
        "fields": customer.fields if isinstance(customer.fields, dict) else {},
        "subscriptions": dict(
            Subscription.objects.filter(customer=customer)
            .order_by("channel")
            .values_list("channel", "status")
        ),
        "points": queries.points_balances(customer_ids=[customer.pk], at=timezone.now()).get(customer.pk, 0),
        "segments": segment_slugs(customer.pk),
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
    }
