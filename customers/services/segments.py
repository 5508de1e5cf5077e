"""Members of static segments, added and removed in batches (rule segments
have no members to change: they follow their rule, customers/rules/)."""

from __future__ import annotations

from django.utils import timezone

from customers.errors import SegmentNotStatic, UnknownSegment
from customers.models import Customer, Segment, SegmentMembership
from customers.services._support import execute, require_int_ids
from maestra import sql


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
    require_int_ids(customer_ids)
    segment_id = _static_segment_id(slug)
    if not customer_ids:
        return 0
    ids_sql, ids_params = sql.value_set(customer_ids)
    return execute(
        f"""
        INSERT INTO {SegmentMembership._meta.db_table} (segment_id, customer_id, added_at)
        SELECT %s, c.id, %s FROM {Customer._meta.db_table} c WHERE c.id IN ({ids_sql}) ORDER BY c.id
        ON CONFLICT (segment_id, customer_id) DO NOTHING
        """,
        [segment_id, sql.db_value(timezone.now()), *ids_params],
    )


def remove_from_segment(*, slug: str, customer_ids: list[int]) -> int:
    """Remove customers from a static segment; returns how many were members."""
    require_int_ids(customer_ids)
    segment_id = _static_segment_id(slug)
    if not customer_ids:
        return 0
    # No dependent rows or signals: Django deletes with one DELETE statement.
    deleted, _ = SegmentMembership.objects.filter(
        segment_id=segment_id, customer_id__in=sql.in_values(customer_ids)
    ).delete()
    return deleted
