"""Per-customer launch limits (SPEC §6).

Checked twice: at entry (cheap, to avoid starting runs that cannot launch)
and atomically right before a run's first steps group, with one conditional
upsert per (flow, customer) — so two simultaneous runs can never both launch
a `once` flow, whatever the number of workers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q

from flows.models import FlowVersion, LaunchRecord
from flows.sql import db_value


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


def blocked_customer_ids(*, flow_id: int, version: FlowVersion, customer_ids, now: datetime) -> set[int]:
    q = blocked_q(
        mode=version.launch_limit_mode,
        period=version.launch_limit_period,
        max_total=version.launch_limit_max_total,
        now=now,
    )
    if q is None:
        return set()
    return set(
        LaunchRecord.objects.filter(q, flow_id=flow_id, customer_id__in=list(customer_ids)).values_list(
            "customer_id", flat=True
        )
    )


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
    allows; returns the run ids that got one. Runs of one customer are taken in
    rounds, because one statement may not touch a row twice."""
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
    with connection.cursor() as cursor:
        for part in rounds:
            values = ", ".join(["(%s, %s, 1, %s, %s, NULL, %s)"] * len(part))
            params: list = []
            for run_id, customer_id in part:
                params += [flow_id, customer_id, db_value(now), db_value(now), run_id]
            cursor.execute(
                f"INSERT INTO {table} "
                "(flow_id, customer_id, launches, first_launched_at, last_step_at, prev_last_step_at, last_run_id) "
                f"VALUES {values} "
                "ON CONFLICT (flow_id, customer_id) DO UPDATE SET "
                f"launches = {table}.launches + 1, "
                f"prev_last_step_at = {table}.last_step_at, "
                "last_step_at = excluded.last_step_at, "
                "last_run_id = excluded.last_run_id "
                f"WHERE {where} "
                "RETURNING last_run_id",
                params + where_params,
            )
            allowed.update(row[0] for row in cursor.fetchall())
    return allowed


def give_back_launches(*, flow_id: int, run_ids: list[int]) -> None:
    """A first steps group that failed on the spot is not a launch (same transaction)."""
    if not run_ids:
        return
    table = LaunchRecord._meta.db_table
    placeholders = ", ".join(["%s"] * len(run_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET launches = launches - 1, last_step_at = prev_last_step_at "
            f"WHERE flow_id = %s AND last_run_id IN ({placeholders}) AND launches > 0",
            [flow_id, *run_ids],
        )


def touch_last_step(*, flow_id: int, customer_ids: list[int], now: datetime) -> None:
    """A later steps group of a launched run moves the period's start (seed example)."""
    if customer_ids:
        LaunchRecord.objects.filter(flow_id=flow_id, customer_id__in=customer_ids).update(last_step_at=now)
