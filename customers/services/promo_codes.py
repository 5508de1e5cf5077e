"""Promo codes: uploading them to a pool and issuing one per customer and
issue key, never the same code twice, also with many workers at once."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from customers import queries
from customers.errors import UnknownPromoPool
from customers.models import PromoCode, PromoPool
from customers.services._support import (
    Errors,
    Rows,
    clean_unique,
    execute,
    fetch,
    is_int,
    max_length,
    report_missing_customers,
    text_cleaner,
)
from maestra import sql

_clean_issue_key = text_cleaner(max_length(PromoCode, "issue_key"), required=True)
_clean_code = text_cleaner(max_length(PromoCode, "code"), required=True)


def _pool_id(slug: str) -> int:
    pool_id = PromoPool.objects.filter(slug=slug).values_list("id", flat=True).first()
    if pool_id is None:
        raise UnknownPromoPool(slug)
    return pool_id


# Namespace of the transaction-level advisory locks on issue keys (ASCII "prom").
_ISSUE_KEY_LOCKS = 0x70726F6D


def _lock_issue_keys(keys: Iterable[str]) -> None:
    """Serialize workers issuing the same keys (PostgreSQL only; SQLite has one
    writer). Without it, a worker that found the pool short could answer None
    for a key another worker is issuing at that very moment. Locks are taken
    in key order, so two workers never wait on each other in a cycle."""
    if connection.vendor != "postgresql":
        return
    keys_sql, keys_params = sql.value_set(sorted(keys), kind="text")
    fetch(
        f"SELECT pg_advisory_xact_lock(%s, hashtext(k)) FROM ({keys_sql}) AS keys(k) ORDER BY k",
        [_ISSUE_KEY_LOCKS, *keys_params],
    )


def _claim_and_issue(pool_id: int, wanted: dict[str, int]) -> dict[str, str | None]:
    now = timezone.now()
    _lock_issue_keys(wanted)
    issued = dict(
        PromoCode.objects.filter(issue_key__in=sql.in_values(wanted, kind="text")).values_list(
            "issue_key", "code"
        )
    )
    todo = [(key, customer_id) for key, customer_id in wanted.items() if key not in issued]
    if todo:
        # SKIP LOCKED: parallel workers take different free codes instead of
        # queueing behind each other; a code locked here is ours until commit.
        # SQLite ignores the lock (one writer, and the transaction is IMMEDIATE).
        claimed = list(
            PromoCode.objects.select_for_update(skip_locked=True)
            .filter(pool_id=pool_id, issued_at__isnull=True)
            .order_by("id")
            .values_list("id", "code")[: len(todo)]
        )
        pairs = [
            {"id": code_id, "customer_id": customer_id, "issue_key": key, "code": code}
            for (code_id, code), (key, customer_id) in zip(claimed, todo)
        ]
        if pairs:
            rows = Rows({"id": "int", "customer_id": "int", "issue_key": "text"}, pairs)
            table = PromoCode._meta.db_table
            updated = execute(
                f"""
                UPDATE {table} SET customer_id = r.customer_id, issue_key = r.issue_key, issued_at = %s
                FROM {rows.sql} WHERE {table}.id = r.id AND {table}.issued_at IS NULL
                """,
                [sql.db_value(now), rows.param],
            )
            if updated != len(pairs):  # cannot happen while we hold the row locks
                raise RuntimeError(f"claimed {len(pairs)} promo codes but issued {updated}")
            issued.update((pair["issue_key"], pair["code"]) for pair in pairs)
    return {key: issued.get(key) for key in wanted}


def issue_promo_codes(*, pool_slug: str, requests: list[tuple[int, str]]) -> dict[str, str | None]:
    """Issue one free code of the pool per (customer_id, issue_key).

    Returns issue_key -> code, or None when the pool ran out (the caller fails
    that step with reason "promo_pool_empty"). A key issued before gets the
    same code again, so a retried step never takes a second code; no code ever
    goes to two customers, also with many workers in parallel. Codes go out in
    upload order (by id).

    Parallel workers skip the codes others have locked (SKIP LOCKED) instead
    of waiting; so when the last free codes are held by another worker's open
    transaction the answer is None, even if that transaction later rolls back."""
    errors = Errors()
    wanted: dict[str, int] = {}
    for index, request in enumerate(requests):
        if not (isinstance(request, tuple | list) and len(request) == 2):
            errors.add(index, "", "must be (customer_id, issue_key)")
            continue
        customer_id, key = request
        if not is_int(customer_id):
            errors.add(index, "customer_id", "must be an integer")
            continue
        try:
            key = _clean_issue_key(key)
        except ValueError as exc:
            errors.add(index, "issue_key", str(exc))
            continue
        if wanted.setdefault(key, customer_id) != customer_id:
            errors.add(index, "issue_key", f"issue key {key!r} given for two different customers")
    errors.raise_if_any()
    pool_id = _pool_id(pool_slug)
    if not wanted:
        return {}
    report_missing_customers(list(wanted.values()), lambda customer_id: customer_id)
    attempts = 3
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                return _claim_and_issue(pool_id, wanted)
        except IntegrityError:
            # Only a writer that bypasses the key locks (not this module) can
            # issue one of these keys between our read and our write; the unique
            # issue_key stops it, and its codes are committed now: read again.
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def add_promo_codes(*, pool_slug: str, codes: list[str]) -> dict[str, int]:
    """Bulk upload codes to a pool; codes already in it (or repeated in the
    upload) are ignored. Returns {"added", "duplicates"}."""
    clean = clean_unique(codes, "code", _clean_code)
    pool_id = _pool_id(pool_slug)
    if not clean:
        return {"added": 0, "duplicates": len(codes)}
    rows = Rows({"code": "text"}, ({"code": code} for code in clean))
    added = execute(
        f"""
        INSERT INTO {PromoCode._meta.db_table} (pool_id, code, created_at)
        SELECT %s, r.code, %s FROM {rows.sql} WHERE true
        ORDER BY r.code
        ON CONFLICT (pool_id, code) DO NOTHING
        """,
        [pool_id, sql.db_value(timezone.now()), rows.param],
    )
    return {"added": added, "duplicates": len(codes) - added}


def pool_available(*, slugs: list[str]) -> dict[str, int]:
    """slug -> number of codes not issued yet; unknown slugs count 0 (a rule
    naming a deleted pool sees an empty pool rather than failing)."""
    counts = queries.free_code_counts(pool_slugs=slugs)
    return {slug: counts.get(slug, 0) for slug in slugs}
