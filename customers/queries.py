"""Batch queries on the customers tables that the rule language and the
services share: points balances, free promo codes, subscription statuses,
static memberships (never one query per customer). Below the rule language
(customers/rules/ reads its facts with them); the read side that evaluates
rules, such as a customer's profile, is customers/selectors.py."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from customers.models import PointsEntry, PromoCode, SegmentMembership, Subscription


def active_points_q(*, at: datetime) -> Q:
    """Entries that count towards the balance at `at`: never expiring, or expiring later."""
    return Q(expires_at__isnull=True) | Q(expires_at__gt=at)


def points_balances(*, customer_ids: Iterable[int], at: datetime) -> dict[int, int]:
    """Current balance per customer; customers without active entries are left out (balance 0)."""
    rows = (
        PointsEntry.objects.filter(active_points_q(at=at), customer_id__in=list(customer_ids))
        .order_by()
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .values_list("customer_id", "total")
    )
    return {customer_id: total for customer_id, total in rows}


def points_balance_expression(*, at: datetime, customer_ref: str = "pk") -> Coalesce:
    """The balance of the customer of the outer query (`customer_ref`), as an expression."""
    total = (
        PointsEntry.objects.filter(active_points_q(at=at), customer_id=OuterRef(customer_ref))
        .order_by()
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Coalesce(Subquery(total, output_field=IntegerField()), Value(0))


def free_code_counts(*, pool_slugs: Iterable[str]) -> dict[str, int]:
    """Codes not yet issued per pool slug; unknown or exhausted pools are left out (0)."""
    rows = (
        PromoCode.objects.filter(pool__slug__in=list(pool_slugs), issued_at__isnull=True)
        .order_by()
        .values("pool__slug")
        .annotate(free=Count("id"))
        .values_list("pool__slug", "free")
    )
    return {slug: free for slug, free in rows}


def free_code_count_expression(*, pool_slug: str) -> Coalesce:
    """The number of free codes of one pool, as an (uncorrelated) expression."""
    free = (
        PromoCode.objects.filter(pool__slug=pool_slug, issued_at__isnull=True)
        .order_by()
        .values("pool_id")
        .annotate(free=Count("id"))
        .values("free")
    )
    return Coalesce(Subquery(free, output_field=IntegerField()), Value(0))


def subscription_statuses(
    *, customer_ids: Iterable[int], channels: Iterable[str]
) -> dict[int, dict[str, str]]:
    """{customer_id: {channel: status}} for the given channels; no row means not subscribed."""
    statuses: dict[int, dict[str, str]] = {}
    rows = Subscription.objects.filter(
        customer_id__in=list(customer_ids), channel__in=list(channels)
    ).values_list("customer_id", "channel", "status")
    for customer_id, channel, status in rows:
        statuses.setdefault(customer_id, {})[channel] = status
    return statuses


def static_memberships(*, customer_ids: Iterable[int], segment_ids: Iterable[int]) -> dict[int, set[int]]:
    """{customer_id: {segment_id, ...}} among the given segments."""
    members: dict[int, set[int]] = {}
    rows = SegmentMembership.objects.filter(
        customer_id__in=list(customer_ids), segment_id__in=list(segment_ids)
    ).values_list("customer_id", "segment_id")
    for customer_id, segment_id in rows:
        members.setdefault(customer_id, set()).add(segment_id)
    return members
