"""Schedule start: at each configured time, the audience enters the flow."""

from __future__ import annotations

from typing import Any

from flows.document.fields import timezone_problem
from flows.nodes.base import Problem, StartKind, ValidationContext, register, unknown_fields
from flows.nodes.condition import rule_problems
from flows.nodes.schedule.recurrence import validate_recurrence

# The schedule's own time zone; "flow" (the default) means the flow's.
DEFAULT_TIMEZONE = "flow"


@register
class ScheduleStart(StartKind):
    kind = "schedule"
    label = "Schedule"
    fields = ("recurrence", "timezone", "audience")

    def config_problems(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = recurrence_problems(config.get("recurrence"))
        if "timezone" in config and (message := timezone_problem(config["timezone"], also=("flow",))):
            problems.append(Problem("timezone", message))
        problems += _audience_problems(config.get("audience"), ctx)
        return problems


def recurrence_problems(recurrence: Any) -> list[Problem]:
    """The recurrence judged by recurrence.validate_recurrence, the very
    function the engine arms and fires schedules with: a recurrence that saves
    as valid can always be launched, and one that can never fire (a weekly
    interval of 53, a cron such as "0 10 31 2 *") is an error on the node."""
    if recurrence is None:
        return [
            Problem("recurrence", 'missing: e.g. {"every": "day", "at": "10:00"} or {"cron": "0 10 * * *"}')
        ]
    return [
        Problem(f"recurrence.{path}" if path else "recurrence", message)
        for path, message in validate_recurrence(recurrence)
    ]


def _audience_problems(audience: Any, ctx: ValidationContext) -> list[Problem]:
    if not isinstance(audience, dict):
        return [Problem("audience", "missing: a segment and/or a rule choosing who enters")]
    problems = unknown_fields(audience, ("segment", "rule"), "audience")
    segment, rule = audience.get("segment"), audience.get("rule")
    if segment is None and rule is None:
        problems.append(Problem("audience", "give a segment, a rule or both"))
    if segment is not None:
        if not isinstance(segment, str):
            problems.append(Problem("audience.segment", "must be a segment slug"))
        elif segment not in ctx.segments:
            problems.append(Problem("audience.segment", f"no segment {segment!r}"))
    if rule is not None:
        problems += rule_problems(rule, "audience.rule", ctx, allow_event=False)
    return problems
