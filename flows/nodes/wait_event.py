"""Wait for an event (SPEC §13): the run leaves by `done` when its customer
has a matching event that occurred after the run reached the node (the
run's clock becomes that event's time), or by `timeout` at clock + timeout.
An unwired port ends the run (completed).

    wait_event {"event_type": "email_clicked", "filter": RULE|null, "timeout": "P3D"}

`filter` reads the awaited event's payload (`event.<key>` paths), like the
flow's goal and exit (validated by the rule language, compiled to SQL).

Set-based both ways: a batch of runs at the node reads the matching events
of all its customers in one query; when events are matched
(flows/nodes/event.py) the runs waiting here for their type are made due in
one UPDATE per event type (`wake_waiting`), and the next batch decides them.
Test mode skips the timeout like waits: a test run leaves at once, by
`done` when the event is already there, else by `timeout`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db.models import Q

from customers.models import Event
from customers.rules import payload_q, validate_rule
from flows.document.fields import duration_problem
from flows.engine.batch import Batch
from flows.models import Flow, FlowVersion, Node, Run
from flows.nodes.base import NodeKind, Problem, ValidationContext, register
from maestra import sql
from maestra.durations import parse_duration

PORTS = ["done", "timeout"]
MAX_EVENT_TYPE_LENGTH = Event._meta.get_field("type").max_length
# Flows whose runs can be waiting: paused ones keep theirs for later.
WAITING_STATUSES = (Flow.Status.ACTIVE, Flow.Status.PAUSED, Flow.Status.TESTING, Flow.Status.LAUNCHING)


def filter_problems(rule: object, field: str) -> list[Problem]:
    """A rule on the awaited event's payload: an event-history leaf's `where`."""
    problems = []
    for path, message in validate_rule({"event": "x", "where": rule, "op": "exists"}):
        inner = path.removeprefix("where").lstrip(".")
        problems.append(Problem(f"{field}.{inner}" if inner else field, message))
    return problems


@register
class WaitEvent(NodeKind):
    kind = "wait_event"
    label = "Wait for event"
    # It always waits (up to its timeout): a loop through it cannot spin.
    breaks_cycles = True
    fields = ("event_type", "filter", "timeout")

    def config_problems(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = []
        event_type = config.get("event_type")
        if not isinstance(event_type, str) or not event_type.strip():
            problems.append(
                Problem("event_type", "missing: the event type the run waits for (e.g. email_clicked)")
            )
        elif len(event_type) > MAX_EVENT_TYPE_LENGTH:
            problems.append(Problem("event_type", f"must be at most {MAX_EVENT_TYPE_LENGTH} characters"))
        elif event_type != event_type.strip():
            # Ingestion strips every event's type: this one would never come.
            problems.append(Problem("event_type", "must not begin or end with spaces"))
        if config.get("filter") is not None:
            problems += filter_problems(config["filter"], "filter")
        if "timeout" not in config or config["timeout"] is None:
            problems.append(Problem("timeout", "missing: how long to wait at most (e.g. P3D)"))
        elif message := duration_problem(config["timeout"]):
            problems.append(Problem("timeout", message))
        return problems

    def ports(self, config: dict) -> list[str]:
        return list(PORTS)

    def process(self, batch: Batch) -> None:
        config = batch.config
        timeout = parse_duration(config["timeout"])
        now = batch.now
        # Each run waits from the clock it reached the node with.
        since = {run.id: run.node_clock or run.clock for run in batch.runs}
        deadline = {run.id: timeout.add_to(since[run.id], batch.graph.tz) for run in batch.runs}
        found = _first_events(batch, config, since=since, deadline=deadline, now=now)
        for run in batch.runs:
            moment = found.get(run.id)
            if moment is not None:
                batch.exit(run, "done", clock=moment)
            elif run.is_test:
                batch.exit(run, "timeout", clock=now)  # test mode skips the timeout
            elif deadline[run.id] <= now:
                batch.exit(run, "timeout", clock=deadline[run.id])
            else:
                batch.wait(run, deadline[run.id])


def _first_events(
    batch: Batch, config: dict, *, since: dict[int, datetime], deadline: dict[int, datetime], now: datetime
) -> dict[int, datetime]:
    """Per run, the time of the first matching event in (since, deadline],
    known by now: one query for the whole batch."""
    events = Event.objects.filter(
        type=config["event_type"],
        customer_id__in=sql.in_values({run.customer_id for run in batch.runs}),
        occurred_at__gt=min(since.values()),
        occurred_at__lte=max(deadline.values()),
    )
    if config.get("filter") is not None:
        events = events.filter(payload_q(config["filter"]))
    by_customer: dict[int, list[datetime]] = defaultdict(list)
    for customer_id, occurred_at in events.order_by("occurred_at", "id").values_list(
        "customer_id", "occurred_at"
    ):
        by_customer[customer_id].append(occurred_at)
    found = {}
    for run in batch.runs:
        for moment in by_customer.get(run.customer_id, ()):
            if since[run.id] < moment <= deadline[run.id]:
                found[run.id] = moment
                break
    return found


def wake_waiting(events: list[dict], *, now: datetime) -> int:
    """Make the runs waiting at a wait_event node for one of the `events`'
    types (of their customers) due now, so the engine decides them in this
    tick: one query for the nodes, one UPDATE per awaited type. Returns how
    many runs were woken."""
    types = {event["type"] for event in events}
    nodes = Node.objects.filter(
        kind=WaitEvent.kind,
        version__state=FlowVersion.State.LAUNCHED,
        version__flow__status__in=WAITING_STATUSES,
    ).values_list("version_id", "key", "config")
    by_type: dict[str, Q] = {}
    for version_id, key, config in nodes:
        event_type = (config or {}).get("event_type")
        if event_type in types:
            where = Q(version_id=version_id, node_key=key)
            by_type[event_type] = by_type[event_type] | where if event_type in by_type else where
    woken = 0
    for event_type, where in sorted(by_type.items(), key=lambda item: item[0]):
        customers = {event["customer_id"] for event in events if event["type"] == event_type}
        woken += Run.objects.filter(
            where, status=Run.Status.WAITING, customer_id__in=sql.in_values(customers), due_at__gt=now
        ).update(due_at=now)
    return woken
