"""Writes on customers, a whole batch at a time, one module per topic:
customers.py (upsert, ensure), events.py, subscriptions.py, fields.py,
segments.py, points.py, promo_codes.py; _support.py is their shared plumbing.

The flows engine's steps node, event ingestion, the REST API and the import
commands all call these functions. Each one takes a batch and runs a bounded
number of queries however large the batch is (customers/services/_support.py
says how).

Repeating a call writes nothing new. The models' unique keys make that so
(Event.external_id, PointsEntry.source_key, PromoCode.issue_key, one
Subscription per channel, one SegmentMembership per segment and customer),
and the writes are INSERT … ON CONFLICT DO NOTHING. That is also what keeps
two workers running the same batch at once from writing anything twice.

The product's own events (customer_created, subscription_changed) are stored
as unprocessed Event rows; the flows engine sweeps them and matches them
against flows. This package never imports flows.
"""

# TRANSITIONAL (issue 12): removed by WP-Z
# The names flows/ and channels/ import from customers.services today, re-
# exported from the topic modules until WP-Z points every importer at them.
from customers.errors import (
    CustomerServiceError,
    InvalidInput,
    SegmentNotStatic,
    UnknownPromoPool,
    UnknownSegment,
)
from customers.services.customers import ensure_customers, upsert_customers
from customers.services.events import CUSTOMER_CREATED, SUBSCRIPTION_CHANGED, emit_events, store_events
from customers.services.fields import set_field, set_field_values
from customers.services.points import grant_points, points_amount_problem, points_balances
from customers.services.promo_codes import add_promo_codes, issue_promo_codes, pool_available
from customers.services.segments import add_to_segment, remove_from_segment
from customers.services.subscriptions import set_subscriptions

__all__ = [
    "CUSTOMER_CREATED",
    "SUBSCRIPTION_CHANGED",
    "CustomerServiceError",
    "InvalidInput",
    "SegmentNotStatic",
    "UnknownPromoPool",
    "UnknownSegment",
    "add_promo_codes",
    "add_to_segment",
    "emit_events",
    "ensure_customers",
    "grant_points",
    "issue_promo_codes",
    "points_amount_problem",
    "points_balances",
    "pool_available",
    "remove_from_segment",
    "set_field",
    "set_field_values",
    "set_subscriptions",
    "store_events",
    "upsert_customers",
]
