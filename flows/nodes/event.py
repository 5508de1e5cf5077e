"""Event start: a run starts when a customer's event of a given type arrives.

Everything of the kind lives here: its config validator (the one the engine
trusts), the entry matching — event type, the start's filter, `max_age`, the
flow's start date and launch limit — that turns stored events into runs
(match_events, called by the tick), and its processing (a run that entered
simply leaves by "next")."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F

from customers.models import Event
from customers.rules import compile_predicate, load_facts
from flows.document.fields import duration_problem
from flows.engine.batch import ENGINE_ERROR, RUN_COLUMNS, EngineContext, RunState, hour_of
from flows.engine.entry import ENTERING_STATUSES, after_start, blocked_customer_ids, within_schedule
from flows.engine.goals import exit_on_events
from flows.models import FlowVersion, Node, NodePass, Run
from flows.nodes.base import Problem, StartKind, ValidationContext, register
from flows.nodes.condition import rule_problems
from flows.nodes.limitation import release_reservations
from flows.nodes.wait_event import wake_waiting
from maestra import sql
from maestra.durations import parse_duration
from maestra.faults import error_text, split_until_alone

log = logging.getLogger(__name__)

# Older events do not start runs (SPEC §5).
DEFAULT_MAX_AGE = "P7D"
MAX_EVENT_TYPE_LENGTH = 100  # customers.Event.type


def event_type_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "missing: the event type that starts a run (e.g. order_created)"
    if len(value) > MAX_EVENT_TYPE_LENGTH:
        return f"must be at most {MAX_EVENT_TYPE_LENGTH} characters"
    if value != value.strip():
        # Ingestion strips the type of every event it stores (customers.services),
        # so a start on "order_created " would never match anything.
        return "must not begin or end with spaces"
    return None


@register
class EventStart(StartKind):
    kind = "event"
    label = "Event"
    fields = ("event_type", "filter", "max_age")

    def config_problems(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = []
        if message := event_type_problem(config.get("event_type")):
            problems.append(Problem("event_type", message))
        if config.get("filter") is not None:
            problems += rule_problems(config["filter"], "filter", ctx)
        if "max_age" in config and (message := duration_problem(config["max_age"])):
            problems.append(Problem("max_age", message))
        return problems


# --- Entry: events become runs -------------------------------------------------


@dataclasses.dataclass
class LiveEventStart:
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


def _event_starts() -> list[LiveEventStart]:
    """The event-start nodes of the live versions that take new runs: one
    query per batch, the start nodes alone (not every node of every live
    version), in a fixed order (version, node)."""
    nodes = (
        Node.objects.filter(
            kind="event",
            version__flow__status__in=ENTERING_STATUSES,
            version__flow__live_version_id=F("version_id"),
        )
        .select_related("version")
        .order_by("version_id", "id")
    )
    return [
        LiveEventStart(
            flow_id=node.version.flow_id,
            version=node.version,
            node_key=node.key,
            event_type=node.config.get("event_type", ""),
            filter=node.config.get("filter"),
            max_age_text=node.config.get("max_age") or DEFAULT_MAX_AGE,
        )
        for node in nodes
    ]


# Moves runs that just entered, inside the entry's transaction (the tick
# passes flows.engine.move.move_entered, which sits above the node kinds).
MoveEntered = Callable[..., Any]


def match_events(
    *, ctx: EngineContext | None = None, limit: int = 5000, move: MoveEntered | None = None
) -> dict[str, int]:
    """Start runs for events not yet matched against the active flows (one batch).

    With `move`, the runs that entered are moved on at once, in the same
    transaction (`move(runs, ctx=, events=, stats=)`, see
    flows.engine.move.move_entered); their counts come back as
    "moved.<runs|moved|completed|stopped|waiting>". Without it they wait,
    due, for process_due_runs.

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
        events = _claim_events(now=now, limit=limit)
        if not events:
            return {}
        counts["events"] = len(events)
        # Exit criteria (SPEC §13), before new runs enter: flows/engine/goals.py.
        exited, exit_flows = exit_on_events(events, ctx=ctx)
        if exited:
            release_reservations(run_ids=exited, flow_ids=exit_flows)
            counts["runs_exited"] = len(exited)
        # Runs waiting for these events (wait_event nodes) are due now: flows/nodes/wait_event.py.
        if woken := wake_waiting(events, now=now):
            counts["runs_woken"] = woken
        events_by_id = {event["id"]: event for event in events}
        by_type: dict[str, list[dict]] = defaultdict(list)
        for event in events:
            by_type[event["type"]].append(event)
        new_runs: list[dict] = []
        for start in _event_starts():
            of_type = by_type.get(start.event_type, [])
            if not of_type:
                continue

            def attempt(part: list[dict], start: LiveEventStart = start) -> None:
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
        stats = _record_entries(created, now=now)
        entered = [
            _entered_state(run, events_by_id, now=now)
            for run in created
            if run["status"] == Run.Status.ACTIVE
        ]
        moved = None
        if move is not None and entered:
            # The entry's counters go with the moved batch's, last (write_batch).
            moved = move(entered, ctx=ctx, events=events_by_id, stats=stats)
        else:
            sql.increment_node_stats(stats)
        counts["runs_started"] = len(entered)
        counts["runs_refused"] = len(created) - counts["runs_started"] - counts["errors"]
    if moved is not None:
        counts.update(ctx.moved_on_entry(moved))  # committed
    return dict(counts)


def _entered_state(run: dict, events: dict[int, dict], *, now: datetime) -> RunState:
    """A run just written by match_events (ENTRY_RETURNING) as the engine
    holds it: the values _new_run gave it."""
    occurred_at = events[run["trigger_event_id"]]["occurred_at"]
    return RunState.entered(
        id=run["id"],
        flow_id=run["flow_id"],
        version_id=run["version_id"],
        customer_id=run["customer_id"],
        trigger_event_id=run["trigger_event_id"],
        is_test=run["is_test"],
        status=run["status"],
        node_key=run["node_key"],
        clock=occurred_at,
        now=now,
    )


def _claim_events(*, now: datetime, limit: int) -> list[dict]:
    """Up to `limit` unprocessed events, oldest id first, that no other worker
    holds: locked (SKIP LOCKED) and marked processed by one UPDATE, so each
    row is written once rather than locked by a SELECT and then updated (the
    caller's transaction makes the mark and the runs one: a rollback leaves
    the events unprocessed). Their columns are read back by primary key."""
    pending = (
        Event.objects.filter(processed_at__isnull=True)
        .order_by("id")
        .select_for_update(skip_locked=True)
        .values("id")[:limit]
    )
    pending_sql, pending_params = pending.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Event._meta.db_table} SET processed_at = %s WHERE id IN ({pending_sql}) RETURNING id",
            [sql.db_value(now), *pending_params],
        )
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return []
    return list(
        Event.objects.filter(id__in=sql.in_values(ids))
        .order_by("id")
        .values("id", "customer_id", "type", "occurred_at", "payload", "depth")
    )


def _entries_of(start: LiveEventStart, events: list[dict], *, now: datetime) -> tuple[list[dict], Counter]:
    """The runs `events` (all of the start's type) give the start's flow:
    active ones, and stopped ones for the events its filter or launch limit
    refuses; with the counts to report."""
    counts: Counter = Counter()
    oldest = now - start.max_age  # parsed once per batch, not per event
    candidates = [e for e in events if e["occurred_at"] >= oldest]
    counts["too_old"] += len(events) - len(candidates)
    if not candidates or not within_schedule(start.version, now):
        return [], counts
    candidates = after_start(start.version, candidates)
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
        blocked = blocked_customer_ids(
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


def _new_run(start: LiveEventStart, event: dict, *, now: datetime, reason: str = "", error: str = "") -> dict:
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
ENTRY_RETURNING = (
    "id",
    "flow_id",
    "version_id",
    "customer_id",
    "trigger_event_id",
    "node_key",
    "is_test",
    "status",
    "stop_reason",
)


def _record_entries(runs: list[dict], *, now: datetime) -> Counter:
    """The pass of runs refused at the door, and the start node's counters to
    add (`runs`: the ENTRY_RETURNING columns of the runs just written)."""
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
    return stats
