"""How customers enter flows: the rules every start kind shares (the launch
limit, the flow's start/end dates) and audience entry — INSERT … SELECT a run
for every customer of an audience, never a Python loop over customers. The
start kinds call it: the schedule fires an audience (flows/nodes/schedule/
firing.py; a large one part by part, parts.py, through insert_runs and
entering_customers), run_flow enters a segment (start_flow_for_segment below), and the
event start matches events (flows/nodes/event.py) through the same launch-
limit rule (entry_blocked_q)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from customers.models import Customer, Segment
from customers.rules import segment_q
from flows.engine.batch import hour_of
from flows.engine.launch_limits import blocked_q, once_until
from flows.models import Flow, FlowVersion, LaunchRecord, Run
from maestra import sql

log = logging.getLogger(__name__)

# Flows whose live version takes new runs. `launching` is a live flow whose
# draft is being launched: its live version keeps running until the new one
# takes over, so events matched meanwhile must not be lost for it (a flow
# never launched has no live version and takes nothing).
ENTERING_STATUSES = (Flow.Status.ACTIVE, Flow.Status.TESTING, Flow.Status.LAUNCHING)


def start_node(version: FlowVersion):
    return version.nodes.filter(kind__in=("event", "schedule")).first()


def entry_blocked_q(*, version: FlowVersion, now: datetime) -> Q | None:
    """Q over LaunchRecord: the customers the launch limit keeps out of
    `version` now (None: nobody).

    Launch records survive every edit, and a `once` limit outlives its
    version: when a later version switches to every_time or periodic, that
    only applies to customers who never launched while `once` was in force
    (SPEC §6; the help page: "customers who have previously completed the
    flow will not re-enter it"). So whoever launched before the last `once`
    version stopped stays out."""
    blocked = blocked_q(
        mode=version.launch_limit_mode,
        period=version.launch_limit_period,
        max_total=version.launch_limit_max_total,
        now=now,
    )
    if version.launch_limit_mode == FlowVersion.LaunchLimit.ONCE:
        return blocked
    until = once_until(flow_id=version.flow_id)
    if until is None:
        return blocked
    launched_under_once = Q(launches__gte=1, first_launched_at__lt=until)
    return launched_under_once if blocked is None else blocked | launched_under_once


def blocked_customer_ids(*, version: FlowVersion, customer_ids: set[int], now: datetime) -> set[int]:
    blocked = entry_blocked_q(version=version, now=now)
    if blocked is None:
        return set()
    return set(
        LaunchRecord.objects.filter(
            blocked, flow_id=version.flow_id, customer_id__in=sorted(customer_ids)
        ).values_list("customer_id", flat=True)
    )


def within_schedule(version: FlowVersion, now: datetime, *, trigger_at: datetime | None = None) -> bool:
    """The flow schedule (start_at/end_at) lets runs in now. `trigger_at` (a
    schedule's fire time) must not lie before start_at either: a fire missed
    before the start does not enter merely because it is merged late."""
    if version.is_test:
        return True  # test mode ignores start/end dates
    if version.start_at and (now < version.start_at or (trigger_at and trigger_at < version.start_at)):
        return False
    return not (version.end_at and now >= version.end_at)


def after_start(version: FlowVersion, events: list[dict]) -> list[dict]:
    """Events that occurred from start_at on: an event from before the flow
    started does not enter it because it arrived (or was processed) late."""
    if version.is_test or version.start_at is None:
        return events
    return [event for event in events if event["occurred_at"] >= version.start_at]


# --- Audiences (schedules, run_flow) ---------------------------------------------


def entering_customers(
    *, version: FlowVersion, audience: Q, now: datetime, id_range: tuple[int, int] | None = None
) -> QuerySet[Customer]:
    """The customers of `audience` that the launch limit lets into `version`
    now: the one rule of audience entry (enter_audience, the parts of a fire)
    and of the audience preview (flows.selectors.audience.audience_preview),
    so the preview counts exactly who then enters. A test version ignores the
    launch limit. `id_range` (after, upto): only customers with after < id <=
    upto, a part of a fire; the launch records read are those of the same
    range, so a part costs its own size, not the whole flow's records."""
    customers = Customer.objects.filter(audience)
    records = LaunchRecord.objects.filter(flow_id=version.flow_id)
    if id_range is not None:
        after, upto = id_range
        customers = customers.filter(id__gt=after, id__lte=upto)
        records = records.filter(customer_id__gt=after, customer_id__lte=upto)
    if version.is_test:
        return customers
    blocked = entry_blocked_q(version=version, now=now)
    if blocked is None:
        return customers
    return customers.exclude(id__in=records.filter(blocked).values("customer_id"))


def enter_audience(
    *,
    version: FlowVersion,
    audience: Q,
    clock: datetime,
    now: datetime,
    limit: int | None = None,
) -> int:
    """INSERT … SELECT a run for every customer of `audience` that the launch
    limit lets in. Returns the number of runs started."""
    start = start_node(version)
    if start is None:
        return 0
    ids = entering_customers(version=version, audience=audience, now=now).order_by("id").values("id")
    if limit is not None:
        ids = ids[:limit]
    statement, params = _insert_statement(version=version, start_key=start.key, ids=ids, clock=clock, now=now)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        started = cursor.rowcount
    if started:
        sql.increment_node_stats(
            {(version.flow_id, start.key, hour_of(now), "entered", version.is_test): started}
        )
    return started


def insert_runs(
    *, version: FlowVersion, start_key: str, ids: QuerySet, clock: datetime, now: datetime
) -> list[tuple[int, int]]:
    """INSERT … SELECT a run at `start_key`, active and due now, for every
    customer id `ids` selects; returns (run id, customer id) of each (its
    other columns are the ones given here: flow, version, clock, now).
    Counts nothing."""
    statement, params = _insert_statement(version=version, start_key=start_key, ids=ids, clock=clock, now=now)
    with connection.cursor() as cursor:
        cursor.execute(statement + " RETURNING id, customer_id", params)
        return cursor.fetchall()


def _insert_statement(
    *, version: FlowVersion, start_key: str, ids: QuerySet, clock: datetime, now: datetime
) -> tuple[str, list]:
    inner_sql, inner_params = ids.query.sql_with_params()
    table = Run._meta.db_table
    columns = (
        "flow_id, version_id, customer_id, trigger_event_id, is_test, status, node_key, due_at, clock, "
        "node_clock, node_entered_at, seq, launched, entered_at, ended_at, stop_reason"
    )
    statement = (
        f"INSERT INTO {table} ({columns}) "
        f"SELECT %s, %s, audience.id, NULL, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s, NULL, '' "
        f"FROM ({inner_sql}) audience"
    )
    params = [
        version.flow_id,
        version.pk,
        version.is_test,
        Run.Status.ACTIVE,
        start_key,
        sql.db_value(now),
        sql.db_value(clock),
        sql.db_value(clock),
        sql.db_value(now),
        False,
        sql.db_value(now),
        *inner_params,
    ]
    return statement, params


# An audience at least this large has its runs table analysed as soon as it
# has entered (analyse_after_entry).
ANALYZE_AFTER_RUNS = 10_000


def analyse_after_entry(started: int) -> None:
    """After a commit that entered `started` runs at once: ANALYZE the runs
    table when they are many, before the workers claim them.

    The claim (flows.engine.move.claim_due_runs) filters by flow and status
    and orders by (due_at, id). With statistics from before the entry, the
    planner believes the new flow has next to no runs in flight, reads them
    all through run_flow_status_idx and sorts them, for every batch of
    2,000: a million-customer audience cost a sort of up to a million rows
    per claim (spilled to disk), until autovacuum got round to it. Fresh
    statistics make it walk run_due_id_idx in order and stop at the batch's
    size. One sampled ANALYZE (a fraction of a second) per large entry, after
    the commit: it sees the new rows, and holds no lock the entry needs."""
    if started >= ANALYZE_AFTER_RUNS and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Run._meta.db_table}")


def start_flow_for_segment(*, flow: Flow, segment_slug: str, now: datetime | None = None) -> int:
    """run_flow: every member of the segment enters the live version now."""
    now = now or timezone.now()
    if flow.live_version_id is None or flow.status not in (Flow.Status.ACTIVE, Flow.Status.TESTING):
        raise ValueError(f"flow {flow.pk} is {flow.status}: only an active or testing flow can run")
    segment = Segment.objects.filter(slug=segment_slug).first()
    if segment is None:
        raise ValueError(f"no segment with slug {segment_slug!r}")
    version = flow.live_version
    if not within_schedule(version, now):
        # Before start_at nothing enters; after end_at the flow behaves as stopped.
        raise ValueError(
            f"flow {flow.pk} is outside its schedule (start {version.start_at or '-'}, end {version.end_at or '-'})"
        )
    with transaction.atomic():
        started = enter_audience(version=version, audience=segment_q(segment), clock=now, now=now)
    analyse_after_entry(started)
    return started
