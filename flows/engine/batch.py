"""What a node kind sees of the engine: a run as plain data (RunState), the
graph of its version, the worker's context (the time, the graphs, the flows),
the Batch a kind processes and the verdicts it gives (Exit, Wait, Stop,
Complete). Nothing here moves a run: flows/engine/move.py does. This module
sits below the node kinds (flows/nodes/), which receive its objects; move.py
sits above them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from customers.models import Customer, Event
from flows.models import Flow, FlowVersion, Run
from maestra import sql

# Flow statuses whose runs move. Paused flows keep their runs where they are;
# archived flows have stopped theirs.
MOVING_STATUSES = (Flow.Status.ACTIVE, Flow.Status.TESTING, Flow.Status.LAUNCHING)
# The stop reason of a run the engine could not process (Run.error says why).
ENGINE_ERROR = "engine_error"
IN_FLIGHT = (Run.Status.ACTIVE, Run.Status.WAITING)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


# --- Outcomes a node gives a run ---------------------------------------------


@dataclass(frozen=True)
class Exit:
    port: str


@dataclass(frozen=True)
class Wait:
    until: datetime


@dataclass(frozen=True)
class Stop:
    reason: str


@dataclass(frozen=True)
class Complete:
    """End the run successfully without following an edge (A/B control)."""

    port: str


@dataclass(slots=True)
class RunState:
    """A run as plain data for the length of one batch."""

    id: int
    flow_id: int
    version_id: int
    customer_id: int
    trigger_event_id: int | None
    is_test: bool
    status: str
    node_key: str
    due_at: datetime | None
    clock: datetime
    node_clock: datetime | None
    node_entered_at: datetime
    seq: int
    launched: bool
    stop_reason: str = ""
    ended_at: datetime | None = None
    outcome: object = None
    changed: bool = False

    FIELDS = (
        "id",
        "flow_id",
        "version_id",
        "customer_id",
        "trigger_event_id",
        "is_test",
        "status",
        "node_key",
        "due_at",
        "clock",
        "node_clock",
        "node_entered_at",
        "seq",
        "launched",
    )
    # claim_due_runs builds a RunState from these columns by position.

    @classmethod
    def entered(cls, *, clock: datetime, now: datetime, **columns) -> RunState:
        """A run just inserted at its start node, due now, as the engine holds
        it (an event start's runs, a fire part's): `columns` are id, flow_id,
        version_id, customer_id, trigger_event_id, is_test, status, node_key."""
        return cls(
            **columns, due_at=now, clock=clock, node_clock=clock, node_entered_at=now, seq=0, launched=False
        )


# The run columns the engine writes back after each batch (and entry inserts).
RUN_COLUMNS = {
    "version_id": "int",
    "status": "text",
    "node_key": "text",
    "due_at": "ts",
    "clock": "ts",
    "node_clock": "ts",
    "node_entered_at": "ts",
    "seq": "int",
    "launched": "bool",
    "ended_at": "ts",
    "stop_reason": "text",
}

# The NodePass columns the engine inserts (a move's passes, a goal exit's stops).
PASS_COLUMNS = {
    "run_id": "int",
    "version_id": "int",
    "node_key": "text",
    "kind": "text",
    "pass_no": "int",
    "at": "ts",
    "port": "text",
    "exited_at": "ts",
    "stop_reason": "text",
}


# --- The graph of one version, loaded once per tick --------------------------


@dataclass
class NodeSpec:
    key: str
    kind: str
    title: str
    config: dict


@dataclass
class Graph:
    version_id: int
    flow_id: int
    flow_name: str
    number: int
    is_test: bool
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    launch_limit: dict
    nodes: dict[str, NodeSpec]
    edges: dict[tuple[str, str], str]
    # The version's document text, for the flow-level settings read where
    # they are used (goal and exit: flows/engine/goals.py).
    document_json: str = "{}"

    @cached_property
    def tz(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except Exception:  # validated on save; a broken zone must not stop the engine
            return ZoneInfo("UTC")

    @classmethod
    def load(cls, version_id: int) -> Graph:
        version = FlowVersion.objects.select_related("flow").get(pk=version_id)
        nodes = {
            row["key"]: NodeSpec(row["key"], row["kind"], row["title"], row["config"] or {})
            for row in version.nodes.values("key", "kind", "title", "config")
        }
        edges = {
            (e["from_key"], e["port"]): e["to_key"]
            for e in version.edges.values("from_key", "port", "to_key")
        }
        return cls(
            version_id=version.pk,
            flow_id=version.flow_id,
            flow_name=version.flow.name,
            number=version.number,
            is_test=version.is_test,
            timezone=version.timezone,
            start_at=version.start_at,
            end_at=version.end_at,
            launch_limit={
                "launch_limit_mode": version.launch_limit_mode,
                "launch_limit_period": version.launch_limit_period,
                "launch_limit_max_total": version.launch_limit_max_total,
            },
            nodes=nodes,
            edges=edges,
            document_json=version.document_json,
        )


class EngineContext:
    """What one worker knows during one pass: the time, the graphs, the flows."""

    def __init__(self, *, now: datetime | None = None, flow_ids: list[int] | None = None):
        self.now = now or timezone.now()
        # Only these flows' runs move (run_flow); None: every flow's.
        self.only_flow_ids = None if flow_ids is None else set(flow_ids)
        self._graphs: dict[int, Graph] = {}
        # Runs this tick leaves alone from now on (see BatchResult.capped).
        self.capped: set[int] = set()
        # Batches the database rolled back to break a deadlock, done again.
        self.retried = 0
        # Runs stopped with engine_error in this pass.
        self.errors = 0

    @cached_property
    def hour(self) -> datetime:
        """The hourly statistics bucket of `now` (asked once per node pass)."""
        return hour_of(self.now)

    def graph(self, version_id: int) -> Graph:
        if version_id not in self._graphs:
            self._graphs[version_id] = Graph.load(version_id)
        return self._graphs[version_id]

    @cached_property
    def flows(self) -> dict[int, dict]:
        """Flows whose runs may move now, with their live version."""
        return {
            row["id"]: row
            for row in Flow.objects.filter(status__in=MOVING_STATUSES).values(
                "id", "status", "live_version_id"
            )
        }

    def moved_on_entry(self, moved: tuple[list, Any]) -> dict[str, int]:
        """The counts of runs moved on in their entry's transaction (what
        flows.engine.move.move_entered returned: the runs and their
        BatchResult), as "moved.<count>"; call once that transaction has
        committed: the runs it capped are left alone for the rest of the tick."""
        runs, result = moved
        self.capped |= result.capped
        return {
            "moved.runs": len(runs),
            "moved.moved": result.moved,
            "moved.completed": result.completed,
            "moved.stopped": result.stopped,
            "moved.waiting": result.waiting,
        }

    def movable_flow_ids(self) -> list[int]:
        ids = []
        for flow_id, row in self.flows.items():
            if row["live_version_id"] is None:
                continue
            if self.only_flow_ids is not None and flow_id not in self.only_flow_ids:
                continue
            live = self.graph(row["live_version_id"])
            # After end_at the flow behaves as stopped: runs stay where they are
            # and execute nothing; moving end_at later lets them continue.
            if not live.is_test and live.end_at is not None and live.end_at <= self.now:
                continue
            ids.append(flow_id)
        return ids


# --- The batch a node kind processes -----------------------------------------


class Batch:
    """The runs standing at one node of one version, handed to its kind."""

    def __init__(
        self, *, ctx: EngineContext, graph: Graph, node: NodeSpec, runs: list[RunState], shared: BatchData
    ):
        self.ctx = ctx
        self.graph = graph
        self.node = node
        self.runs = runs
        self.shared = shared

    @property
    def now(self) -> datetime:
        return self.ctx.now

    @property
    def config(self) -> dict:
        return self.node.config

    def exit(self, run: RunState, port: str, *, clock: datetime | None = None) -> None:
        if clock is not None:
            run.clock = clock
        run.outcome = Exit(port)

    def wait(self, run: RunState, until: datetime, *, clock: datetime | None = None) -> None:
        if clock is not None:
            run.clock = clock
        run.outcome = Wait(until)

    def stop(self, run: RunState, reason: str) -> None:
        run.outcome = Stop(reason)

    def complete(self, run: RunState, port: str) -> None:
        run.outcome = Complete(port)

    def customers(self) -> dict[int, dict]:
        return self.shared.customers()

    def event_of(self, run: RunState) -> dict | None:
        if run.trigger_event_id is None:
            return None
        return self.shared.events().get(run.trigger_event_id)


class BatchData:
    """Rows shared by every node of a batch, loaded on first use in one query each."""

    CUSTOMER_COLUMNS = (
        "id",
        "external_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "timezone",
        "fields",
    )

    def __init__(self, runs: list[RunState], *, events: dict[int, dict] | None = None):
        self._runs = runs
        self._customers: dict[int, dict] | None = None
        # The trigger events, when the caller has them already (runs that
        # just entered: flows/nodes/event.py): read, never written.
        self._events: dict[int, dict] | None = events

    def customers(self) -> dict[int, dict]:
        if self._customers is None:
            ids = {run.customer_id for run in self._runs}
            self._customers = {
                row["id"]: row
                for row in Customer.objects.filter(id__in=sql.in_values(ids)).values(*self.CUSTOMER_COLUMNS)
            }
        return self._customers

    def forget_customers(self) -> None:
        """A steps group may have changed profiles (set_field): later nodes of
        the same batch read them afresh."""
        self._customers = None

    def events(self) -> dict[int, dict]:
        """Trigger events by id: {"type", "occurred_at", "payload", "depth"}."""
        if self._events is None:
            ids = {run.trigger_event_id for run in self._runs if run.trigger_event_id}
            self._events = {
                row["id"]: row
                for row in Event.objects.filter(id__in=sql.in_values(ids)).values(
                    "id", "type", "occurred_at", "payload", "depth"
                )
            }
        return self._events
