"""Limitation: at most `max` passes per period; the rest leave through `beyond`."""

from __future__ import annotations

from typing import Any

from flows.document import is_int
from flows.nodes.base import NodeKind, Problem, ValidationContext, register

FIELDS = ("max", "period", "alert_below")
PERIOD_UNITS = ("hours", "days", "calendar_days", "weeks")


@register
class Limitation(NodeKind):
    kind = "limitation"
    label = "Limitation"

    def validate(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = [Problem(key, "unknown field") for key in config if key not in FIELDS]
        maximum = config.get("max")
        max_ok = is_int(maximum) and maximum >= 1
        if not max_ok:
            problems.append(Problem("max", "must be a positive integer"))
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


def _period_problems(period: Any) -> list[Problem]:
    if period is None:
        return []  # all time
    if not isinstance(period, dict):
        return [Problem("period", 'must be null (all time) or {"unit": "days", "every": 1}')]
    problems = [Problem(f"period.{key}", "unknown field") for key in period if key not in ("unit", "every")]
    if period.get("unit") not in PERIOD_UNITS:
        problems.append(Problem("period.unit", f"must be one of {', '.join(PERIOD_UNITS)}"))
    every = period.get("every")
    if not is_int(every) or every < 1:
        problems.append(Problem("period.every", "must be an integer of at least 1"))
    return problems
