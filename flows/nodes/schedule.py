"""Schedule start: at each configured time, the audience enters the flow."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flows.document import WEEKDAYS, is_int, time_of_day_problem, timezone_problem, weekdays_problem
from flows.nodes.base import NodeKind, Problem, ValidationContext, register
from flows.nodes.condition import rule_problems

if TYPE_CHECKING:  # pragma: no cover
    from flows.engine import Batch

FIELDS = ("recurrence", "timezone", "audience")
# The schedule's own time zone; "flow" (the default) means the flow's.
DEFAULT_TIMEZONE = "flow"
RECURRENCE_FIELDS = {
    "day": ("every", "interval", "at"),
    "week": ("every", "interval", "weekdays", "at"),
    "month": ("every", "days", "nth_weekday", "at"),
}
LAST_DAY = "last"
LAST_WEEK = -1  # nth_weekday.n for "the last <weekday> of the month"

# Cron fields: minute hour day-of-month month day-of-week (0 and 7 are Sunday).
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_ITEM = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")


@register
class ScheduleStart(NodeKind):
    kind = "schedule"
    label = "Schedule"
    is_start = True

    def validate(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = [Problem(key, "unknown field") for key in config if key not in FIELDS]
        problems += recurrence_problems(config.get("recurrence"))
        if "timezone" in config and (message := timezone_problem(config["timezone"], also=("flow",))):
            problems.append(Problem("timezone", message))
        problems += _audience_problems(config.get("audience"), ctx)
        return problems

    def ports(self, config: dict) -> list[str]:
        return ["next"]

    def process(self, batch: Batch) -> None:
        # Entry checks (type, filter, age, limits) happen when the run is created.
        for run in batch.runs:
            batch.exit(run, "next")


def recurrence_problems(recurrence: Any) -> list[Problem]:
    if not isinstance(recurrence, dict):
        return [
            Problem("recurrence", 'missing: e.g. {"every": "day", "at": "10:00"} or {"cron": "0 10 * * *"}')
        ]
    if "cron" in recurrence:
        problems = [Problem(f"recurrence.{key}", "unknown field") for key in recurrence if key != "cron"]
        if message := cron_problem(recurrence["cron"]):
            problems.append(Problem("recurrence.cron", message))
        return problems
    every = recurrence.get("every")
    if not isinstance(every, str) or every not in RECURRENCE_FIELDS:
        return [Problem("recurrence.every", 'must be "day", "week" or "month" (or give a "cron" string)')]
    problems = [
        Problem(f"recurrence.{key}", "unknown field")
        for key in recurrence
        if key not in RECURRENCE_FIELDS[every]
    ]
    if message := time_of_day_problem(recurrence.get("at")):
        problems.append(Problem("recurrence.at", message))
    if "interval" in recurrence and every in ("day", "week"):
        interval = recurrence["interval"]
        if not is_int(interval) or interval < 1:
            problems.append(Problem("recurrence.interval", "must be an integer of at least 1"))
    if every == "week" and (message := weekdays_problem(recurrence.get("weekdays"))):
        problems.append(Problem("recurrence.weekdays", message))
    if every == "month":
        problems += _month_problems(recurrence)
    return problems


def _month_problems(recurrence: dict) -> list[Problem]:
    has_days = recurrence.get("days") is not None
    has_nth = recurrence.get("nth_weekday") is not None
    if has_days == has_nth:
        return [Problem("recurrence.days", 'give either "days" or "nth_weekday"')]
    if has_days:
        days = recurrence["days"]
        if not isinstance(days, list) or not days:
            return [Problem("recurrence.days", 'must be a non-empty list of days 1..31 or "last"')]
        for index, day in enumerate(days):
            if day != LAST_DAY and not (is_int(day) and 1 <= day <= 31):
                return [Problem(f"recurrence.days.{index}", f'{day!r} is not a day 1..31 or "last"')]
        if len(set(days)) != len(days):
            return [Problem("recurrence.days", "lists a day twice")]
        return []
    nth = recurrence["nth_weekday"]
    if not isinstance(nth, dict):
        return [Problem("recurrence.nth_weekday", 'must be an object {"n": 1..5 or -1, "weekday": "tue"}')]
    problems = [
        Problem(f"recurrence.nth_weekday.{key}", "unknown field")
        for key in nth
        if key not in ("n", "weekday")
    ]
    n = nth.get("n")
    if not is_int(n) or not (1 <= n <= 5 or n == LAST_WEEK):
        problems.append(
            Problem("recurrence.nth_weekday.n", "must be 1..5, or -1 for the last one of the month")
        )
    if nth.get("weekday") not in WEEKDAYS:
        problems.append(Problem("recurrence.nth_weekday.weekday", f"must be one of {', '.join(WEEKDAYS)}"))
    return problems


def cron_problem(expression: Any) -> str | None:
    """A standard 5-field cron expression (numbers, names, *, ranges, lists, steps)."""
    if not isinstance(expression, str):
        return 'must be a cron string such as "0 10 * * 1-5"'
    parts = expression.lower().split()
    if len(parts) != 5:
        return f"a cron string has 5 fields (minute hour day month weekday), not {len(parts)}"
    for part, (name, low, high, names) in zip(parts, _CRON_FIELDS):
        for item in part.split(","):
            match = _CRON_ITEM.fullmatch(item)
            if not match:
                return f"{item!r} is not a valid {name} item"
            star, first, last, step = match.groups()
            if step is not None and int(step) < 1:
                return f"the step in {item!r} must be at least 1"
            if star:
                continue
            values = [_cron_value(value, low, high, names) for value in (first, last) if value is not None]
            if None in values:
                return f"{item!r}: {name} must be within {low}..{high}"
            if len(values) == 2 and values[0] > values[1]:
                return f"{item!r}: a range must go upwards"
    return None


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if text in names:
        return names.index(text) + low
    if not text.isdigit():
        return None
    value = int(text)
    return value if low <= value <= high else None


def _audience_problems(audience: Any, ctx: ValidationContext) -> list[Problem]:
    if not isinstance(audience, dict):
        return [Problem("audience", "missing: a segment and/or a rule choosing who enters")]
    problems = [
        Problem(f"audience.{key}", "unknown field") for key in audience if key not in ("segment", "rule")
    ]
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
