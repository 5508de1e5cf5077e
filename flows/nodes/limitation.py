"""Limitation: at most `max` passes per period; the rest leave through `beyond`."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest

from flows.document.fields import is_int
from flows.engine.batch import Batch
from flows.models import LimitationCounter, LimitationGrant
from flows.nodes.base import NodeKind, Problem, ValidationContext, register, unknown_fields
from maestra import sql
from maestra.durations import localize

log = logging.getLogger(__name__)

PERIOD_UNITS = ("hours", "days", "calendar_days", "weeks")
MAX_PERIOD_EVERY = 1000


@register
class Limitation(NodeKind):
    kind = "limitation"
    label = "Limitation"
    fields = ("max", "period", "alert_below")

    def config_problems(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = []
        maximum = config.get("max")
        # The counter of places is an integer column.
        max_ok = is_int(maximum) and 1 <= maximum <= sql.MAX_INT
        if not max_ok:
            problems.append(Problem("max", f"must be an integer from 1 to {sql.MAX_INT:,}"))
        problems += _period_problems(config.get("period"))
        alert_below = config.get("alert_below")
        if alert_below is not None:
            if not is_int(alert_below) or alert_below < 0:
                problems.append(Problem("alert_below", "must be null or a non-negative integer"))
            elif max_ok and alert_below >= maximum:
                problems.append(Problem("alert_below", f"must be less than max ({maximum})"))
        return problems

    def ports(self, config: dict) -> list[str]:
        return ["within", "beyond"]

    def process(self, batch: Batch) -> None:
        for is_test in (False, True):
            runs = sorted((run for run in batch.runs if run.is_test == is_test), key=lambda run: run.id)
            if runs:
                granted = grant_places(batch=batch, runs=runs, is_test=is_test)
                for run in runs:
                    batch.exit(run, "within" if run.id in granted else "beyond")


def _period_problems(period: Any) -> list[Problem]:
    if period is None:
        return []  # all time
    if not isinstance(period, dict):
        return [Problem("period", 'must be null (all time) or {"unit": "days", "every": 1}')]
    problems = unknown_fields(period, ("unit", "every"), "period")
    if period.get("unit") not in PERIOD_UNITS:
        problems.append(Problem("period.unit", f"must be one of {', '.join(PERIOD_UNITS)}"))
    every = period.get("every")
    # Bounded (SPEC §12): 10**30 days overflowed the window arithmetic and halted every tick.
    if not is_int(every) or not 1 <= every <= MAX_PERIOD_EVERY:
        problems.append(Problem("period.every", f"must be an integer from 1 to {MAX_PERIOD_EVERY:,}"))
    return problems


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROLLING_UNITS = {"hours": timedelta(hours=1), "days": timedelta(days=1)}


def counter_key(
    config: dict, *, now: datetime, tz: ZoneInfo, is_test: bool
) -> tuple[str, datetime, datetime | None]:
    """(signature, window_start, rolling_since) of the counter a pass uses now.

    Mode and period are in the signature, `max` is not: changing only max keeps
    the count, changing the period starts a new one. hours/days are rolling
    windows (places come back as grants age out); calendar_days/weeks are
    calendar windows in the flow's time zone (weeks start on Monday)."""
    period = config.get("period")
    prefix = "test:" if is_test else ""
    if not period:
        return f"{prefix}all", EPOCH, None
    unit, every = period["unit"], int(period.get("every", 1))
    signature = f"{prefix}{unit}:{every}"
    if unit in ROLLING_UNITS:
        return signature, EPOCH, now - every * ROLLING_UNITS[unit]
    local = now.astimezone(tz)
    day = local.date()
    if unit == "weeks":
        monday = day - timedelta(days=day.weekday())
        index = (monday - date(1970, 1, 5)).days // 7  # 1970-01-05 was a Monday
        start_day = date(1970, 1, 5) + timedelta(weeks=index - index % every)
    else:  # calendar_days
        index = (day - date(1970, 1, 1)).days
        start_day = date(1970, 1, 1) + timedelta(days=index - index % every)
    return signature, localize(datetime.combine(start_day, time()), tz).astimezone(UTC), None


def grant_places(*, batch: Batch, runs: list, is_test: bool) -> set[int]:
    """Reserve places for as many runs as the cap allows, under a row lock of
    the counter (never SKIP LOCKED: a skipped counter would be over-granted)."""
    config = batch.config
    signature, window_start, rolling_since = counter_key(
        config, now=batch.now, tz=batch.graph.tz, is_test=is_test
    )
    counter, _ = LimitationCounter.objects.get_or_create(
        flow_id=batch.graph.flow_id, node_key=batch.node.key, signature=signature, window_start=window_start
    )
    counter = LimitationCounter.objects.select_for_update().get(pk=counter.pk)
    if rolling_since is None:
        used = counter.used
    else:
        used = LimitationGrant.objects.filter(counter=counter, granted_at__gt=rolling_since).count()
    # Re-processing a pass that already holds a place keeps it (whichever
    # counter it came from: a place is unique per run and pass).
    held = set(
        LimitationGrant.objects.filter(run_id__in=[run.id for run in runs]).values_list("run_id", "pass_no")
    )
    already = {run.id for run in runs if (run.id, run.seq) in held}
    free = max(0, int(config["max"]) - used)
    newcomers = [run for run in runs if run.id not in already][:free]
    # One statement for any number of places (bulk_create splits on SQLite).
    sql.insert_rows(
        LimitationGrant._meta.db_table,
        columns={"counter_id": "int", "run_id": "int", "pass_no": "int", "state": "text", "granted_at": "ts"},
        rows=[(counter.pk, run.id, run.seq, LimitationGrant.State.RESERVED, batch.now) for run in newcomers],
    )
    if newcomers:
        LimitationCounter.objects.filter(pk=counter.pk).update(used=F("used") + len(newcomers))
    _alert(batch=batch, counter=counter, remaining=free - len(newcomers))
    return already | {run.id for run in newcomers}


def _alert(*, batch: Batch, counter: LimitationCounter, remaining: int) -> None:
    """Warn once when the places left drop below alert_below; re-armed when
    places come back (rolling windows, places given back)."""
    alert_below = batch.config.get("alert_below")
    if alert_below is None:
        return
    low = remaining < alert_below
    if low and not counter.alerted:
        log.warning(
            "limitation %r of flow %r (%s): %d place(s) left of %d, below %d",
            batch.node.key,
            batch.graph.flow_name,
            counter.signature,
            remaining,
            batch.config["max"],
            alert_below,
        )
    if low != counter.alerted:
        LimitationCounter.objects.filter(pk=counter.pk).update(alerted=low)


def _no_counters(flow_ids: set[int] | None) -> bool:
    """True when none of these flows has a limitation counter, so none of their
    runs can hold a place: the common case, one cheap query instead of a
    lookup by every run id. Exact, because the caller holds its runs' locks:
    a grant of one of them was either committed before (its counter is
    visible) or written in this very transaction."""
    return flow_ids is not None and not LimitationCounter.objects.filter(flow_id__in=flow_ids).exists()


def consume_reservations(*, run_ids: list[int], flow_ids: set[int] | None = None) -> None:
    """A steps group executed: the places its run reserved are used for good."""
    if not run_ids or _no_counters(flow_ids):
        return
    ids_sql, ids_params = sql.value_set(run_ids)
    LimitationGrant.objects.filter(
        run_id__in=RawSQL(ids_sql, ids_params), state=LimitationGrant.State.RESERVED
    ).update(state=LimitationGrant.State.CONSUMED)


def release_reservations(*, run_ids, flow_ids: set[int] | None = None) -> None:
    """Runs that ended without executing a steps group give their places back
    (same transaction that ends them); `run_ids` is a list or a subquery. Counters are locked in id order so two
    workers never deadlock."""
    if _no_counters(flow_ids):
        return
    if isinstance(run_ids, list | set | tuple):
        ids_sql, ids_params = sql.value_set(run_ids)
        run_ids = RawSQL(ids_sql, ids_params)
    grants = list(
        LimitationGrant.objects.filter(run_id__in=run_ids, state=LimitationGrant.State.RESERVED).values_list(
            "id", "counter_id"
        )
    )
    if not grants:
        return
    per_counter = Counter(counter_id for _, counter_id in grants)
    list(
        LimitationCounter.objects.select_for_update()
        .filter(pk__in=per_counter)
        .order_by("pk")
        .values_list("pk")
    )
    LimitationGrant.objects.filter(id__in=[grant_id for grant_id, _ in grants]).delete()
    for counter_id, n in sorted(per_counter.items()):
        LimitationCounter.objects.filter(pk=counter_id).update(used=Greatest(F("used") - n, 0))
