"""Event start: a run starts when a customer's event of a given type arrives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.document import duration_problem
from flows.nodes.base import NodeKind, Problem, ValidationContext, register
from flows.nodes.condition import rule_problems

if TYPE_CHECKING:  # pragma: no cover
    from flows.engine import Batch

FIELDS = ("event_type", "filter", "max_age")
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
class EventStart(NodeKind):
    kind = "event"
    label = "Event"
    is_start = True

    def validate(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = [Problem(key, "unknown field") for key in config if key not in FIELDS]
        if message := event_type_problem(config.get("event_type")):
            problems.append(Problem("event_type", message))
        if config.get("filter") is not None:
            problems += rule_problems(config["filter"], "filter", ctx)
        if "max_age" in config and (message := duration_problem(config["max_age"])):
            problems.append(Problem("max_age", message))
        return problems

    def ports(self, config: dict) -> list[str]:
        return ["next"]

    def process(self, batch: Batch) -> None:
        # Entry checks (type, filter, age, limits) happen when the run is created.
        for run in batch.runs:
            batch.exit(run, "next")
