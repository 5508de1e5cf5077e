"""Steps: a group of actions executed in order (a "launch" of the run)."""

from __future__ import annotations

from typing import Any

from customers.models import Channel, Segment
from flows.document import duration_problem, is_int
from flows.nodes.base import NodeKind, Problem, ValidationContext, register
from flows.nodes.event import event_type_problem

FIELDS = ("relevance", "steps")
ACTION_FIELDS = {
    "send": ("action", "channel", "template"),
    "issue_promo_code": ("action", "pool"),
    "points": ("action", "amount", "expires_in", "reason"),
    "set_field": ("action", "field", "value"),
    "add_to_segment": ("action", "segment"),
    "remove_from_segment": ("action", "segment"),
    "emit_event": ("action", "event_type", "payload"),
}


@register
class Steps(NodeKind):
    kind = "steps"
    label = "Steps"

    def validate(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = [Problem(key, "unknown field") for key in config if key not in FIELDS]
        if "relevance" not in config:
            problems.append(Problem("relevance", "missing: how long the steps stay relevant (e.g. P1D)"))
        elif message := duration_problem(config["relevance"]):
            problems.append(Problem("relevance", message))
        steps = config.get("steps")
        if not isinstance(steps, list) or not steps:
            return [*problems, Problem("steps", "must be a non-empty list of actions")]
        for index, step in enumerate(steps):
            problems += _action_problems(step, f"steps.{index}", ctx)
        return problems

    def ports(self, config: dict) -> list[str]:
        return ["next"]


def _action_problems(step: Any, prefix: str, ctx: ValidationContext) -> list[Problem]:
    if not isinstance(step, dict):
        return [Problem(prefix, 'an action must be an object with an "action" field')]
    action = step.get("action")
    if not isinstance(action, str) or action not in ACTION_FIELDS:
        return [Problem(f"{prefix}.action", f"must be one of {', '.join(ACTION_FIELDS)}")]
    problems = [
        Problem(f"{prefix}.{key}", "unknown field") for key in step if key not in ACTION_FIELDS[action]
    ]
    found = _CHECKS[action](step, ctx)
    return problems + [Problem(f"{prefix}.{field}", message) for field, message in found]


def _send(step: dict, ctx: ValidationContext) -> list[tuple[str, str]]:
    problems = []
    channel, template = step.get("channel"), step.get("template")
    if channel not in Channel.values:
        problems.append(("channel", f"must be one of {', '.join(Channel.values)}"))
    if not isinstance(template, str) or not template:
        problems.append(("template", "missing: the slug of the template to send"))
    elif template not in ctx.templates:
        problems.append(("template", f"no template {template!r}"))
    elif channel in Channel.values and ctx.templates[template] != channel:
        problems.append(
            ("template", f"{template!r} is a template for {ctx.templates[template]}, not for {channel}")
        )
    return problems


def _issue_promo_code(step: dict, ctx: ValidationContext) -> list[tuple[str, str]]:
    pool = step.get("pool")
    if not isinstance(pool, str) or not pool:
        return [("pool", "missing: the slug of the promo code pool")]
    if pool not in ctx.pools:
        return [("pool", f"no promo code pool {pool!r}")]
    return []


def _points(step: dict, ctx: ValidationContext) -> list[tuple[str, str]]:
    problems = []
    amount = step.get("amount")
    if not is_int(amount) or amount == 0:
        problems.append(("amount", "must be a non-zero integer (negative to deduct)"))
    if step.get("expires_in") is not None and (message := duration_problem(step["expires_in"])):
        problems.append(("expires_in", message))
    if "reason" in step and not isinstance(step["reason"], str):
        problems.append(("reason", "must be a string"))
    return problems


def _set_field(step: dict, ctx: ValidationContext) -> list[tuple[str, str]]:
    problems = []
    field = step.get("field")
    if not isinstance(field, str) or not field.strip():
        problems.append(("field", "missing: the name of the customer field to set"))
    elif "." in field:
        problems.append(("field", "a field name, not a path: customer.fields.<name> is set by its name"))
    if "value" not in step:
        problems.append(("value", "missing: the value to store (any JSON value)"))
    return problems


def _segment(step: dict, ctx: ValidationContext) -> list[tuple[str, str]]:
    segment = step.get("segment")
    if not isinstance(segment, str) or not segment:
        return [("segment", "missing: the slug of a static segment")]
    if segment not in ctx.segments:
        return [("segment", f"no segment {segment!r}")]
    if ctx.segments[segment] != Segment.Kind.STATIC:
        return [("segment", f"{segment!r} is rule-based; only static segments have members to change")]
    return []


def _emit_event(step: dict, ctx: ValidationContext) -> list[tuple[str, str]]:
    problems = []
    if message := event_type_problem(step.get("event_type")):
        problems.append(("event_type", message))
    if "payload" in step and not isinstance(step["payload"], dict):
        problems.append(("payload", "must be an object"))
    return problems


_CHECKS = {
    "send": _send,
    "issue_promo_code": _issue_promo_code,
    "points": _points,
    "set_field": _set_field,
    "add_to_segment": _segment,
    "remove_from_segment": _segment,
    "emit_event": _emit_event,
}
