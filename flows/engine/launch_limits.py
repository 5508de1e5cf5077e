"""Per-customer launch limits (SPEC §6).

Checked twice: at entry (cheap, to avoid starting runs that cannot launch)
and atomically right before a run's first steps group, with one conditional
upsert per (flow, customer) — so two simultaneous runs can never both launch
a `once` flow, whatever the number of workers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Max, Q
from django.db.models.expressions import RawSQL

from flows.models import FlowVersion, LaunchRecord
from maestra.sql import db_value, json_rows, value_set


def blocked_q(*, mode: str, period: timedelta | None, max_total: int | None, now: datetime) -> Q | None:
    """Q over LaunchRecord for the customers that may not enter now (None: nobody)."""
    if mode == FlowVersion.LaunchLimit.ONCE:
        return Q(launches__gte=1)
    q = Q(launches__gte=max_total) if max_total else None
    if mode == FlowVersion.LaunchLimit.PERIODIC and period:
        # The block ends at exactly last step + period (then allowed).
        recent = Q(last_step_at__gt=now - period)
        q = recent if q is None else (q | recent)
    return q


def once_until(*, flow_id: int) -> datetime | None:
    """When the flow's last `once` version stopped (None: it never had one
    that stopped). Customers whose first launch came before it launched under
    `once` and stay out of every later version (SPEC §6)."""
    return FlowVersion.objects.filter(
        flow_id=flow_id,
        state=FlowVersion.State.LAUNCHED,
        is_test=False,
        launch_limit_mode=FlowVersion.LaunchLimit.ONCE,
        stopped_at__isnull=False,
    ).aggregate(until=Max("stopped_at"))["until"]


def _allowed_sql(
    *, mode: str, period: timedelta | None, max_total: int | None, now: datetime
) -> tuple[str, list]:
    table = LaunchRecord._meta.db_table
    if mode == FlowVersion.LaunchLimit.ONCE:
        return f"{table}.launches < 1", []
    parts, params = [], []
    if max_total:
        parts.append(f"{table}.launches < %s")
        params.append(max_total)
    if mode == FlowVersion.LaunchLimit.PERIODIC and period:
        parts.append(f"({table}.last_step_at IS NULL OR {table}.last_step_at <= %s)")
        params.append(db_value(now - period))
    return (" AND ".join(parts) or "1 = 1"), params


def take_launches(*, flow_id: int, version_row: dict, runs: list[tuple[int, int]], now: datetime) -> set[int]:
    """Atomically record a launch for each (run_id, customer_id) that the limit
    allows; returns the run ids that got one.

    One conditional upsert per round: runs of one customer are taken in
    rounds, because one statement may not touch a row twice. Rows go in
    customer order, so two workers lock the records they share in the same
    order. A run that already holds the customer's latest launch (its batch is
    processed a second time) gets it again without counting it twice."""
    allowed: set[int] = set()
    rounds: list[list[tuple[int, int]]] = []
    seen: dict[int, int] = {}
    for run_id, customer_id in sorted(runs):
        index = seen.get(customer_id, 0)
        seen[customer_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append((run_id, customer_id))
    where, where_params = _allowed_sql(
        mode=version_row["launch_limit_mode"],
        period=version_row["launch_limit_period"],
        max_total=version_row["launch_limit_max_total"],
        now=now,
    )
    table = LaunchRecord._meta.db_table
    if version_row["launch_limit_mode"] != FlowVersion.LaunchLimit.ONCE:
        # The same rule as at entry (SPEC §6): whoever launched while `once`
        # was in force stays out, also with a run that entered before the
        # switch and reaches its first steps group after it.
        until = once_until(flow_id=flow_id)
        if until is not None:
            where = (
                f"({where}) AND NOT ({table}.launches >= 1 "
                f"AND COALESCE({table}.first_launched_at < %s, false))"
            )
            where_params = [*where_params, db_value(until)]
    same_run = f"{table}.last_run_id = excluded.last_run_id"
    with connection.cursor() as cursor:
        for part in rounds:
            rows_sql, rows_params = json_rows({"run_id": "int", "customer_id": "int"}, part)
            cursor.execute(
                f"INSERT INTO {table} "
                "(flow_id, customer_id, launches, first_launched_at, last_step_at, prev_last_step_at, last_run_id) "
                f"SELECT %s, r.customer_id, 1, %s, %s, NULL, r.run_id FROM {rows_sql} WHERE true "
                "ORDER BY r.customer_id "
                "ON CONFLICT (flow_id, customer_id) DO UPDATE SET "
                f"launches = CASE WHEN {same_run} THEN {table}.launches ELSE {table}.launches + 1 END, "
                f"prev_last_step_at = CASE WHEN {same_run} THEN {table}.prev_last_step_at "
                f"ELSE {table}.last_step_at END, "
                f"last_step_at = CASE WHEN {same_run} THEN {table}.last_step_at ELSE excluded.last_step_at END, "
                # A record whose launches were all given back starts afresh.
                f"first_launched_at = CASE WHEN {table}.launches = 0 OR {table}.first_launched_at IS NULL "
                f"THEN excluded.first_launched_at ELSE {table}.first_launched_at END, "
                "last_run_id = excluded.last_run_id "
                f"WHERE ({where}) OR {same_run} "
                "RETURNING last_run_id",
                [flow_id, db_value(now), db_value(now), *rows_params, *where_params],
            )
            allowed.update(row[0] for row in cursor.fetchall())
    return allowed


def give_back_launches(*, flow_id: int, run_ids: list[int]) -> None:
    """A first steps group that failed on the spot is not a launch (same
    transaction). The record forgets the run, so a later group of the same
    run takes a launch afresh, and a customer left with no launch has no
    first launch either."""
    if not run_ids:
        return
    table = LaunchRecord._meta.db_table
    rows_sql, rows_params = json_rows({"run_id": "int"}, [(run_id,) for run_id in sorted(run_ids)])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET launches = launches - 1, last_step_at = prev_last_step_at, last_run_id = NULL, "
            # Nothing launched after all: the customer never launched (once → every
            # time only lets in customers who never launched, SPEC §6).
            "first_launched_at = CASE WHEN launches <= 1 THEN NULL ELSE first_launched_at END "
            f"WHERE flow_id = %s AND launches > 0 AND last_run_id IN (SELECT r.run_id FROM {rows_sql})",
            [flow_id, *rows_params],
        )


def touch_last_step(*, flow_id: int, customer_ids: list[int], now: datetime) -> None:
    """A later steps group of a launched run moves the period's start (seed example)."""
    if customer_ids:
        ids_sql, ids_params = value_set(customer_ids)
        LaunchRecord.objects.filter(flow_id=flow_id, customer_id__in=RawSQL(ids_sql, ids_params)).update(
            last_step_at=now
        )
