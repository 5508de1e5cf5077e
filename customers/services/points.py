"""The points ledger: entries granted once per source key, and balances."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from customers import queries
from customers.models import PointsEntry
from customers.services._support import (
    Errors,
    Rows,
    execute,
    is_aware,
    is_int,
    max_length,
    report_missing_customers,
    text_cleaner,
)
from maestra import sql

_clean_reason = text_cleaner(max_length(PointsEntry, "reason"))
_clean_source_key = text_cleaner(max_length(PointsEntry, "source_key"), required=True)


def points_amount_problem(amount: Any) -> str | None:
    """A points amount: a non-zero integer the ledger's integer column holds.
    The one check, used here and by the flow's points step when it is saved."""
    if not is_int(amount) or amount == 0:
        return "must be a non-zero integer (negative to deduct)"
    if abs(amount) > sql.MAX_INT:
        return f"must be between -{sql.MAX_INT:,} and {sql.MAX_INT:,}"
    return None


def grant_points(*, entries: list[dict[str, Any]]) -> int:
    """Write points entries {customer_id, amount (± int, not 0), reason,
    expires_at (aware datetime | None), source_key (str | None)}; an entry
    whose source_key is already stored (or repeated in the batch) is skipped,
    so a retried step grants once. Returns the number of entries written."""
    errors = Errors()
    allowed = {"customer_id", "amount", "reason", "expires_at", "source_key"}
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if not errors.check_object(index, entry, allowed):
            continue
        if not is_int(entry.get("customer_id")):
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
        if expires_at is not None and not is_aware(expires_at):
            errors.add(index, "expires_at", "must be a datetime with a time zone, or null")
        source_key = errors.clean_optional(index, entry, "source_key", _clean_source_key)
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
    report_missing_customers(clean, lambda entry: entry["customer_id"])
    rows = Rows(
        {
            "customer_id": "int",
            "amount": "int",
            "reason": "text",
            "expires_at": "datetime",
            "source_key": "text",
        },
        clean,
    )
    return execute(
        f"""
        INSERT INTO {PointsEntry._meta.db_table} (customer_id, amount, reason, created_at, expires_at, source_key)
        SELECT r.customer_id, r.amount, r.reason, %s, r.expires_at, r.source_key
        FROM {rows.sql} WHERE true
        ORDER BY r.source_key
        ON CONFLICT (source_key) DO NOTHING
        """,
        [sql.db_value(timezone.now()), rows.param],
    )


def points_balances(*, customer_ids: list[int]) -> dict[int, int]:
    """customer id -> balance now (0 without active entries); the query is
    customers.queries.points_balances."""
    totals = queries.points_balances(customer_ids=customer_ids, at=timezone.now())
    return {customer_id: totals.get(customer_id, 0) for customer_id in customer_ids}
