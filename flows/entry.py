"""How customers enter flows: from events, from a schedule's audience, or from
a segment run by hand. Audiences are selected in SQL and inserted with one
INSERT … SELECT, never a Python loop over customers."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from customers.models import Customer, Event
from flows.engine import ENGINE_ERROR, RUN_COLUMNS, EngineContext, hour_of
from flows.launch_limits import blocked_q, once_until
from flows.models import Flow, FlowVersion, LaunchRecord, NodePass, Run
from maestra import sql
from maestra.audit import log as audit
from maestra.durations import parse_duration
from maestra.faults import error_text, is_system_error, split_until_alone

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = "P7D"
TEST_AUDIENCE_LIMIT = 10_000
# Flows whose live version takes new runs. `launching` is a live flow whose
# draft is being launched: its live version keeps running until the new one
# takes over, so events matched meanwhile must not be lost for it (a flow
# never launched has no live version and takes nothing).
ENTERING_STATUSES = (Flow.Status.ACTIVE, Flow.Status.TESTING, Flow.Status.LAUNCHING)


def _start_node(version: FlowVersion):
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


def _blocked_customer_ids(*, version: FlowVersion, customer_ids: set[int], now: datetime) -> set[int]:
    blocked = entry_blocked_q(version=version, now=now)
    if blocked is None:
        return set()
    return set(
        LaunchRecord.objects.filter(
            blocked, flow_id=version.flow_id, customer_id__in=sorted(customer_ids)
        ).values_list("customer_id", flat=True)
    )


def _within_schedule(version: FlowVersion, now: datetime, *, trigger_at: datetime | None = None) -> bool:
    """The flow schedule (start_at/end_at) lets runs in now. `trigger_at` (a
    schedule's fire time) must not lie before start_at either: a fire missed
    before the start does not enter merely because it is merged late."""
    if version.is_test:
        return True  # test mode ignores start/end dates
    if version.start_at and (now < version.start_at or (trigger_at and trigger_at < version.start_at)):
        return False
    return not (version.end_at and now >= version.end_at)


def _after_start(version: FlowVersion, events: list[dict]) -> list[dict]:
    """Events that occurred from start_at on: an event from before the flow
    started does not enter it because it arrived (or was processed) late."""
    if version.is_test or version.start_at is None:
        return events
    return [event for event in events if event["occurred_at"] >= version.start_at]


# --- Events --------------------------------------------------------------------


@dataclasses.dataclass
class EventStart:
    flow_id: int
    version: FlowVersion
    node_key: str
    event_type: str
    filter: dict | None
    max_age_text: str

    @property
    def max_age(self) -> timedelta:
        # Read here, not when listing the starts: a value no validator caught
        # fails this flow's entry alone (see match_events).
        return parse_duration(self.max_age_text).approximate()


def _event_starts() -> list[EventStart]:
    versions = (
        FlowVersion.objects.filter(
            flow__status__in=ENTERING_STATUSES,
            flow__live_version_id=F("id"),
        )
        .select_related("flow")
        .prefetch_related("nodes")
    )
    starts = []
    for version in versions:
        for node in version.nodes.all():
            if node.kind == "event":
                starts.append(
                    EventStart(
                        flow_id=version.flow_id,
                        version=version,
                        node_key=node.key,
                        event_type=node.config.get("event_type", ""),
                        filter=node.config.get("filter"),
                        max_age_text=node.config.get("max_age") or DEFAULT_MAX_AGE,
                    )
                )
    return starts


def match_events(*, ctx: EngineContext | None = None, limit: int = 5000) -> dict[str, int]:
    """Start runs for events not yet matched against the active flows (one batch).

    Each flow takes its events in a savepoint. When that raises (a filter or
    setting no validator caught), the flow's events are split until the ones
    that fail alone are found (maestra.faults.split_until_alone): each of
    those gets a run stopped with `engine_error`, the error kept on it; the
    flow's other events and every other flow enter as usual, and the whole
    batch is marked processed, so a poison event never comes back."""
    ctx = ctx or EngineContext()
    now = ctx.now
    counts: Counter = Counter()
    with transaction.atomic():
        events = list(
            Event.objects.filter(processed_at__isnull=True)
            .order_by("id")
            .select_for_update(skip_locked=True)
            .values("id", "customer_id", "type", "occurred_at", "payload", "depth")[:limit]
        )
        if not events:
            return {}
        counts["events"] = len(events)
        by_type: dict[str, list[dict]] = defaultdict(list)
        for event in events:
            by_type[event["type"]].append(event)
        new_runs: list[dict] = []
        for start in _event_starts():
            of_type = by_type.get(start.event_type, [])
            if not of_type:
                continue

            def attempt(part: list[dict], start: EventStart = start) -> None:
                with transaction.atomic():  # a savepoint: a failed attempt leaves nothing
                    rows, part_counts = _entries_of(start, part, now=now)
                new_runs.extend(rows)
                counts.update(part_counts)

            for event, error in split_until_alone(of_type, attempt):
                log.error(
                    "flow %s: event %s stopped with %s: %s",
                    start.flow_id,
                    event["id"],
                    ENGINE_ERROR,
                    error_text(error),
                    exc_info=error,
                )
                counts["errors"] += 1
                new_runs.append(_new_run(start, event, now=now, reason=ENGINE_ERROR, error=error_text(error)))
        # One statement for the batch (a JSON parameter), ids back by RETURNING.
        created = [
            dict(zip(ENTRY_RETURNING, row, strict=True))
            for row in sql.insert_rows(
                Run._meta.db_table, columns=RUN_INSERT_COLUMNS, rows=new_runs, returning=ENTRY_RETURNING
            )
        ]
        _record_entries(created, now=now)
        ids_sql, ids_params = sql.value_set(e["id"] for e in events)
        Event.objects.filter(id__in=RawSQL(ids_sql, ids_params)).update(processed_at=now)
        counts["runs_started"] = sum(1 for run in created if run["status"] == Run.Status.ACTIVE)
        counts["runs_refused"] = len(created) - counts["runs_started"] - counts["errors"]
    return dict(counts)


def _entries_of(start: EventStart, events: list[dict], *, now: datetime) -> tuple[list[dict], Counter]:
    """The runs `events` (all of the start's type) give the start's flow:
    active ones, and stopped ones for the events its filter or launch limit
    refuses; with the counts to report."""
    from customers.rules import compile_predicate, load_facts

    counts: Counter = Counter()
    candidates = [e for e in events if e["occurred_at"] >= now - start.max_age]
    counts["too_old"] += len(events) - len(candidates)
    if not candidates or not _within_schedule(start.version, now):
        return [], counts
    candidates = _after_start(start.version, candidates)
    if not candidates:
        return [], counts
    failed_filter: set[int] = set()
    if start.filter:
        facts = load_facts(
            start.filter,
            sorted({e["customer_id"] for e in candidates}),
            clocks=[e["occurred_at"] for e in candidates],  # a run's clock starts at its event
        )
        matches = compile_predicate(start.filter)  # once per batch, not per event
        for event in candidates:
            customer_facts = facts.get(event["customer_id"])
            if customer_facts is None or not matches(
                dataclasses.replace(customer_facts, event=event["payload"] or {}, clock=event["occurred_at"]),
                now,
            ):
                failed_filter.add(event["id"])
    blocked: set[int] = set()
    if not start.version.is_test:
        blocked = _blocked_customer_ids(
            version=start.version, customer_ids={e["customer_id"] for e in candidates}, now=now
        )
    rows = []
    for event in candidates:
        reason = ""
        if event["id"] in failed_filter:
            reason = "filter_failed"
        elif event["customer_id"] in blocked:
            reason = "frequency_limit"
        rows.append(_new_run(start, event, now=now, reason=reason))
    return rows, counts


def _new_run(start: EventStart, event: dict, *, now: datetime, reason: str = "", error: str = "") -> dict:
    """A run of `start`'s flow for `event`: active, or stopped at the door with `reason`."""
    return {
        "flow_id": start.flow_id,
        "version_id": start.version.pk,
        "customer_id": event["customer_id"],
        "trigger_event_id": event["id"],
        "is_test": start.version.is_test,
        "status": Run.Status.STOPPED if reason else Run.Status.ACTIVE,
        "node_key": start.node_key,
        "due_at": None if reason else now,
        "clock": event["occurred_at"],
        "node_clock": event["occurred_at"],
        "node_entered_at": now,
        "seq": 0,
        "launched": False,
        "entered_at": now,
        "ended_at": now if reason else None,
        "stop_reason": reason,
        "error": error,
    }


# A new run: the columns the engine writes back after each batch, and those
# fixed at entry.
RUN_INSERT_COLUMNS = {
    "flow_id": "int",
    "customer_id": "int",
    "trigger_event_id": "int",
    "is_test": "bool",
    "entered_at": "ts",
    **RUN_COLUMNS,
    "error": "text",
}
ENTRY_RETURNING = ("id", "flow_id", "version_id", "node_key", "is_test", "status", "stop_reason")


def _record_entries(runs: list[dict], *, now: datetime) -> None:
    """Stats for the start node, and the pass of runs refused at the door
    (`runs`: the ENTRY_RETURNING columns of the runs just written)."""
    stats: Counter = Counter()
    passes = []
    hour = hour_of(now)
    for run in runs:
        stats[(run["flow_id"], run["node_key"], hour, "entered", run["is_test"])] += 1
        if run["status"] == Run.Status.STOPPED:
            stats[(run["flow_id"], run["node_key"], hour, f"stop:{run['stop_reason']}", run["is_test"])] += 1
            passes.append(
                NodePass(
                    run_id=run["id"],
                    version_id=run["version_id"],
                    node_key=run["node_key"],
                    kind="event",
                    pass_no=0,
                    at=now,
                    exited_at=now,
                    stop_reason=run["stop_reason"],
                )
            )
    NodePass.objects.bulk_create(passes, ignore_conflicts=True, batch_size=2000)
    sql.increment_node_stats(stats)


# --- Audiences (schedules, run_flow) ---------------------------------------------


def entering_customers(*, version: FlowVersion, audience: Q, now: datetime) -> QuerySet[Customer]:
    """The customers of `audience` that the launch limit lets into `version`
    now: the one rule of audience entry (enter_audience) and of the audience
    preview (flows.selectors.audience_preview), so the preview counts exactly
    who then enters. A test version ignores the launch limit."""
    customers = Customer.objects.filter(audience)
    if version.is_test:
        return customers
    blocked = entry_blocked_q(version=version, now=now)
    if blocked is None:
        return customers
    return customers.exclude(
        id__in=LaunchRecord.objects.filter(blocked, flow_id=version.flow_id).values("customer_id")
    )


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
    start = _start_node(version)
    if start is None:
        return 0
    ids = entering_customers(version=version, audience=audience, now=now).order_by("id").values("id")
    if limit is not None:
        ids = ids[:limit]
    inner_sql, inner_params = ids.query.sql_with_params()
    table = Run._meta.db_table
    columns = (
        "flow_id, version_id, customer_id, trigger_event_id, is_test, status, node_key, due_at, clock, "
        "node_clock, node_entered_at, seq, launched, entered_at, ended_at, stop_reason"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) "
            f"SELECT %s, %s, audience.id, NULL, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s, NULL, '' "
            f"FROM ({inner_sql}) audience",
            [
                version.flow_id,
                version.pk,
                version.is_test,
                Run.Status.ACTIVE,
                start.key,
                sql.db_value(now),
                sql.db_value(clock),
                sql.db_value(clock),
                sql.db_value(now),
                False,
                sql.db_value(now),
                *inner_params,
            ],
        )
        started = cursor.rowcount
    if started:
        sql.increment_node_stats(
            {(version.flow_id, start.key, hour_of(now), "entered", version.is_test): started}
        )
    return started


def audience_q(config: dict) -> Q:
    """The customers a schedule start's audience takes (segment and/or rule)."""
    from customers.models import Segment
    from customers.rules import segment_q, to_q

    audience = config.get("audience") or {}
    q = Q()
    if audience.get("segment"):
        q &= segment_q(Segment.objects.get(slug=audience["segment"]))
    if audience.get("rule"):
        q &= to_q(audience["rule"])
    return q


def _fire_audience(version: FlowVersion, start) -> Q | None:
    """The audience of one fire, or None when it cannot be selected any more:
    a segment deleted after the launch (or a rule segment made circular) must
    not stop every tick; that fire takes nobody and the schedule moves on."""
    from customers.models import Segment
    from customers.rules import RuleError

    try:
        return audience_q(start.config)
    except (Segment.DoesNotExist, RuleError) as exc:
        log.warning(
            "flow %s v%s: schedule audience unavailable, fire skipped: %s",
            version.flow_id,
            version.number,
            exc,
        )
        return None


def schedule_tz(config: dict, version: FlowVersion) -> ZoneInfo:
    name = config.get("timezone") or "flow"
    return ZoneInfo(version.timezone if name == "flow" else name)


def arm_schedule(*, version: FlowVersion, now: datetime) -> None:
    """A freshly launched version with a schedule start fires strictly after now.
    Raises ValueError only for a recurrence validation would refuse (the
    launch then fails, see flows.lifecycle.finish_pending_launches)."""
    from flows.schedule import next_fire

    start = _start_node(version)
    if start is None or start.kind != "schedule":
        return
    fire = next_fire(start.config["recurrence"], tz=schedule_tz(start.config, version), after=now, anchor=now)
    FlowVersion.objects.filter(pk=version.pk).update(next_fire_at=fire)


def fire_schedules(*, ctx: EngineContext | None = None) -> dict[str, int]:
    """Fire every due schedule start once; fires missed while nothing ran are
    merged into one, with the run clock at the latest scheduled time.

    Each version fires in its own transaction. A fire that raises (an
    audience rule or recurrence no validator caught) is skipped alone: the
    version moves on to its next fire (or is disarmed when it has none), the
    error goes to the flow's audit log, and every other schedule fires."""
    ctx = ctx or EngineContext()
    now = ctx.now
    counts: Counter = Counter()
    due_ids = list(
        FlowVersion.objects.filter(
            next_fire_at__lte=now,
            flow__live_version_id=F("id"),
            # Paused ones too: their fires are skipped, not kept for later.
            flow__status__in=(*ENTERING_STATUSES, Flow.Status.PAUSED),
        ).values_list("id", flat=True)
    )
    for version_id in due_ids:
        try:
            counts.update(_fire(version_id, now=now))
        except Exception as exc:
            if is_system_error(exc):
                raise
            counts["errors"] += 1
            _skip_failed_fire(version_id, now=now, error=exc)
    return dict(counts)


def _fire(version_id: int, *, now: datetime) -> Counter:
    from flows.schedule import last_fire_at_or_before, next_fire

    counts: Counter = Counter()
    with transaction.atomic():
        version = (
            FlowVersion.objects.select_for_update(skip_locked=True)
            .filter(pk=version_id, next_fire_at__lte=now)
            .select_related("flow")
            .first()
        )
        if version is None:
            return counts  # another worker fires it
        start = _start_node(version)
        tz = schedule_tz(start.config, version)
        recurrence = start.config["recurrence"]
        anchor = version.launched_at or version.created_at
        fire_at = (
            last_fire_at_or_before(
                recurrence,
                tz=tz,
                after=version.next_fire_at - timedelta(seconds=1),
                until=now,
                anchor=anchor,
            )
            or version.next_fire_at
        )
        audience = None
        if version.flow.status != Flow.Status.PAUSED and _within_schedule(version, now, trigger_at=fire_at):
            audience = _fire_audience(version, start)
            counts["audience_missing" if audience is None else "fired"] += 1
        else:
            counts["skipped"] += 1
        if audience is not None:
            counts["runs_started"] += enter_audience(
                version=version,
                audience=audience,
                clock=fire_at,
                now=now,
                limit=TEST_AUDIENCE_LIMIT if version.is_test else None,
            )
        # A test fires once; a live version goes on to the next occurrence.
        following = None if version.is_test else next_fire(recurrence, tz=tz, after=now, anchor=anchor)
        FlowVersion.objects.filter(pk=version.pk).update(next_fire_at=following)
    return counts


def _skip_failed_fire(version_id: int, *, now: datetime, error: Exception) -> None:
    """A fire that raised: nobody entered (its transaction rolled back); the
    version moves on to its next fire, or is disarmed when even that cannot be
    computed, and the flow's audit log says why."""
    from flows.schedule import next_fire

    text = error_text(error)
    log.error("schedule of flow version %s failed, fire skipped: %s", version_id, text, exc_info=error)
    with transaction.atomic():
        version = FlowVersion.objects.select_for_update().filter(pk=version_id).select_related("flow").first()
        if version is None:
            return
        following = None
        if not version.is_test:
            try:
                start = _start_node(version)
                following = next_fire(
                    start.config["recurrence"],
                    tz=schedule_tz(start.config, version),
                    after=now,
                    anchor=version.launched_at or version.created_at,
                )
            except Exception as exc:
                if is_system_error(exc):
                    raise
        FlowVersion.objects.filter(pk=version.pk).update(next_fire_at=following)
        audit.log(
            "flow.schedule_failed",
            subject=version.flow,
            data={
                "version": version.number,
                "error": text,
                "next_fire_at": following.isoformat() if following else None,
            },
        )


def start_flow_for_segment(*, flow: Flow, segment_slug: str, now: datetime | None = None) -> int:
    """run_flow: every member of the segment enters the live version now."""
    from customers.models import Segment
    from customers.rules import segment_q

    now = now or timezone.now()
    if flow.live_version_id is None or flow.status not in (Flow.Status.ACTIVE, Flow.Status.TESTING):
        raise ValueError(f"flow {flow.pk} is {flow.status}: only an active or testing flow can run")
    segment = Segment.objects.filter(slug=segment_slug).first()
    if segment is None:
        raise ValueError(f"no segment with slug {segment_slug!r}")
    version = flow.live_version
    if not _within_schedule(version, now):
        # Before start_at nothing enters; after end_at the flow behaves as stopped.
        raise ValueError(
            f"flow {flow.pk} is outside its schedule (start {version.start_at or '-'}, end {version.end_at or '-'})"
        )
    with transaction.atomic():
        return enter_audience(version=version, audience=segment_q(segment), clock=now, now=now)
