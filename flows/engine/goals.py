"""Flow goal and exit criteria (SPEC §13): the one validator of their shapes,
their reading with defaults, and the set-based exit check the engine runs
when events are ingested (flows/nodes/event.py) and on every wake
(flows/engine/move.py).

    "goal": {"event_type": "order_created", "filter": RULE|null, "window": "P7D",
             "value_field": "event.total"|null} | null
    "exit": {"event_type": "order_created", "filter": RULE|null} | null

`filter` reads the matched event's payload only (`event.<key>` paths): it is
the `where` of an event-history leaf, validated and compiled by the rule
language itself (customers.rules), so what is accepted at save time is what
runs. A run exits when its customer has a matching event that occurred after
the run entered (its own trigger event never counts).

Cost: the criteria of a version are read from its document once per engine
pass; a batch without exit criteria costs
nothing more, a batch with them one EXISTS query per flow, served by the
index on events (customer, type, occurred_at).
"""

from __future__ import annotations

import json
import weakref
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet, Value
from django.db.models.functions import Coalesce

from customers.models import Event
from customers.rules import parse_path, payload_q, validate_rule
from flows.document.fields import duration_problem
from flows.engine.batch import IN_FLIGHT, PASS_COLUMNS, RUN_COLUMNS, EngineContext, RunState, hour_of
from flows.models import Flow, Node, NodePass, Run
from maestra import sql
from maestra.durations import Duration, parse_duration

EXIT_CRITERIA = "exit_criteria"
# Flows whose runs may be in flight: a paused flow's runs exit too (they
# execute nothing, and a customer who met the exit must not resume later).
EXIT_STATUSES = (Flow.Status.ACTIVE, Flow.Status.PAUSED, Flow.Status.TESTING, Flow.Status.LAUNCHING)
DEFAULT_GOAL_WINDOW = "P7D"
GOAL_KEYS = ("event_type", "filter", "window", "value_field")
EXIT_KEYS = ("event_type", "filter")
MAX_EVENT_TYPE_LENGTH = Event._meta.get_field("type").max_length


@dataclass(frozen=True)
class Criteria:
    """A matching event: its type and a payload rule (None: any)."""

    event_type: str
    filter: dict | None

    def events(self) -> QuerySet:
        events = Event.objects.filter(type=self.event_type)
        if self.filter is not None:
            events = events.filter(payload_q(self.filter))
        return events


@dataclass(frozen=True)
class Goal(Criteria):
    window_text: str = DEFAULT_GOAL_WINDOW
    value_field: str | None = None

    @property
    def window(self) -> Duration:
        return parse_duration(self.window_text)

    def value_of(self, payload: Any) -> Decimal:
        """The conversion's value: the number at value_field, 0 when there is
        none (or it is not a number), so one odd event cannot break the stats."""
        if self.value_field is None:
            return Decimal(0)
        value: Any = payload
        for key in parse_path(self.value_field).keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return Decimal(0)
        try:
            amount = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return Decimal(0)
        return amount if amount.is_finite() else Decimal(0)


# --- The one validator ------------------------------------------------------------


def document_problems(doc: dict) -> list[dict]:
    """Every problem of the document's goal and exit, as validation errors
    {"node": None, "field", "message"}. Never raises."""
    errors: list[dict] = []
    for name, keys in (("goal", GOAL_KEYS), ("exit", EXIT_KEYS)):
        for field, message in _problems(doc.get(name), name, keys):
            errors.append({"node": None, "field": field, "message": message})
    return errors


def _problems(value: Any, name: str, keys: tuple[str, ...]) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [(name, "must be an object {" + ", ".join(keys) + "} or null")]
    found = [(f"{name}.{key}", "unknown field") for key in value if key not in keys]
    event_type = value.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        found.append((f"{name}.event_type", "missing: the event type to watch for (e.g. order_created)"))
    elif len(event_type) > MAX_EVENT_TYPE_LENGTH:
        found.append((f"{name}.event_type", f"must be at most {MAX_EVENT_TYPE_LENGTH} characters"))
    elif event_type != event_type.strip():
        found.append((f"{name}.event_type", "must not begin or end with spaces"))
    if value.get("filter") is not None:
        # The filter is an event-history leaf's `where`: the rule language judges it there.
        for path, message in validate_rule({"event": "x", "where": value["filter"], "op": "exists"}):
            inner = path.removeprefix("where").lstrip(".")
            found.append((f"{name}.filter.{inner}" if inner else f"{name}.filter", message))
    if "window" in value and (message := duration_problem(value["window"])):
        found.append((f"{name}.window", message))
    value_field = value.get("value_field")
    if value_field is not None:
        message = None
        try:
            path = parse_path(value_field)
            if path.source != "event":
                message = "must be a path into the goal event's payload: event.<key>"
        except Exception as exc:  # RuleError: the path language's own message
            message = str(exc)
        if message:
            found.append((f"{name}.value_field", message))
    return found


def read_goal(doc: dict) -> Goal | None:
    """The document's goal, defaults applied; None without one or when it is
    invalid (a draft with errors is stored, but never runs)."""
    goal = doc.get("goal")
    if goal is None or _problems(goal, "goal", GOAL_KEYS):
        return None
    return Goal(
        event_type=goal["event_type"],
        filter=goal.get("filter"),
        window_text=goal.get("window") or DEFAULT_GOAL_WINDOW,
        value_field=goal.get("value_field"),
    )


def read_exit(doc: dict) -> Criteria | None:
    criteria = doc.get("exit")
    if criteria is None or _problems(criteria, "exit", EXIT_KEYS):
        return None
    return Criteria(event_type=criteria["event_type"], filter=criteria.get("filter"))


# --- Criteria of the versions a pass meets, read once per engine pass -----------

# Per EngineContext (one tick, one worker pass): version id -> its exit
# criteria. Not per process: an id is not a stable key on every database
# (SQLite hands out the id of a rolled-back row again).
_exits: weakref.WeakKeyDictionary[EngineContext, dict[int, Criteria | None]] = weakref.WeakKeyDictionary()


def exits_of(version_ids: set[int], *, ctx: EngineContext) -> dict[int, Criteria | None]:
    """Exit criteria per version, read from the documents of the graphs the
    pass loads anyway (no query of its own), parsed once per pass."""
    known = _exits.setdefault(ctx, {})
    for version_id in version_ids:
        if version_id not in known:
            known[version_id] = read_exit(json.loads(ctx.graph(version_id).document_json))
    return {vid: known[vid] for vid in version_ids}


# --- The exit check, set-based -----------------------------------------------------


def exiting(runs: QuerySet, criteria: Criteria) -> QuerySet:
    """The runs of `runs` whose customer has an event meeting `criteria` that
    occurred after the run entered, other than the run's own trigger event."""
    events = criteria.events().filter(
        customer_id=OuterRef("customer_id"), occurred_at__gt=OuterRef("entered_at")
    )
    events = events.exclude(id=Coalesce(OuterRef("trigger_event_id"), Value(0)))
    return runs.filter(Exists(events))


def exiting_runs(runs: list[RunState], *, ctx: EngineContext) -> list[RunState]:
    """The runs of a batch the engine must stop before moving them: one query
    per version with exit criteria among them, none otherwise."""
    by_version: dict[int, list[RunState]] = {}
    for run in runs:
        if run.outcome is None:
            by_version.setdefault(run.version_id, []).append(run)
    criteria = exits_of(set(by_version), ctx=ctx)
    stopping: list[RunState] = []
    for version_id, group in by_version.items():
        if criteria.get(version_id) is None:
            continue
        ids = exiting(
            Run.objects.filter(id__in=sql.in_values(run.id for run in group)), criteria[version_id]
        ).values_list("id", flat=True)
        found = set(ids)
        stopping += [run for run in group if run.id in found]
    return stopping


def exit_on_events(events: list[dict], *, ctx: EngineContext) -> tuple[list[int], set[int]]:
    """The exit check at ingestion: stop the runs in flight that `events`
    (a batch being matched, dicts with "type" and "customer_id") make exit.
    One query for the flows with runs in flight, then one per flow whose
    exit criteria watch one of the events' types. Returns the stopped run
    ids and their flows."""
    live_versions = dict(
        Flow.objects.filter(status__in=EXIT_STATUSES, live_version__isnull=False).values_list(
            "id", "live_version_id"
        )
    )
    if not live_versions:
        return [], set()
    return stop_exiting(runs_to_exit(events, live_versions=live_versions, ctx=ctx), now=ctx.now)


def runs_to_exit(events: list[dict], *, live_versions: dict[int, int], ctx: EngineContext) -> list[RunState]:
    """Runs in flight that the new `events` make exit (call inside the
    ingestion transaction): per flow whose live version has exit criteria of
    one of the events' types, one query, limited to the customers of those
    events. Locked with SKIP LOCKED: a run a worker holds now is checked on
    that very wake (exiting_runs), so skipping it loses nothing.
    `live_versions`: flow id -> live version id."""
    criteria = exits_of(set(live_versions.values()), ctx=ctx)
    customers_by_type: dict[str, set[int]] = {}
    for event in events:
        customers_by_type.setdefault(event["type"], set()).add(event["customer_id"])
    found: list[RunState] = []
    for flow_id, version_id in sorted(live_versions.items()):
        exit_criteria = criteria.get(version_id)
        if exit_criteria is None or exit_criteria.event_type not in customers_by_type:
            continue
        runs = Run.objects.filter(
            flow_id=flow_id,
            status__in=IN_FLIGHT,
            customer_id__in=sql.in_values(customers_by_type[exit_criteria.event_type]),
        )
        rows = (
            exiting(runs, exit_criteria)
            .order_by("id")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list(*RunState.FIELDS)
        )
        found += [RunState(*row) for row in rows]
    return found


def stop_exiting(runs: list[RunState], *, now: datetime) -> tuple[list[int], set[int]]:
    """Stop `runs` with `exit_criteria` where they stand: the run rows, their
    node pass and the hourly stop counter, in a fixed number of statements
    (a pass already recorded is not counted twice). Returns the run ids and
    their flow ids (the caller gives back limitation places)."""
    if not runs:
        return [], set()
    kinds = {
        (version_id, key): kind
        for version_id, key, kind in Node.objects.filter(
            version_id__in=sql.in_values({run.version_id for run in runs})
        ).values_list("version_id", "key", "kind")
    }
    for run in runs:
        run.status = Run.Status.STOPPED
        run.stop_reason = EXIT_CRITERIA
        run.ended_at = now
        run.due_at = None
    sql.bulk_update(
        Run._meta.db_table,
        key="id",
        columns=RUN_COLUMNS,
        rows=[(run.id, *(getattr(run, column) for column in RUN_COLUMNS)) for run in runs],
    )
    recorded = sql.insert_rows(
        NodePass._meta.db_table,
        columns=PASS_COLUMNS,
        rows=[
            {
                "run_id": run.id,
                "version_id": run.version_id,
                "node_key": run.node_key,
                "kind": kinds.get((run.version_id, run.node_key), ""),
                "pass_no": run.seq,
                "at": run.node_entered_at,
                "port": "",
                "exited_at": now,
                "stop_reason": EXIT_CRITERIA,
            }
            for run in runs
        ],
        on_conflict=("run_id", "pass_no"),
        returning=("run_id",),
    )
    recorded_ids = {row[0] for row in recorded}
    stats: Counter = Counter()
    hour = hour_of(now)
    for run in runs:
        if run.id in recorded_ids:
            stats[(run.flow_id, run.node_key, hour, f"stop:{EXIT_CRITERIA}", run.is_test)] += 1
    sql.increment_node_stats(stats)
    return [run.id for run in runs], {run.flow_id for run in runs}
