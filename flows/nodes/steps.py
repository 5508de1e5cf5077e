"""Steps: a group of actions executed in order (a "launch" of the run)."""

from __future__ import annotations

from typing import Any

from channels.rendering import sample_render_problem
from customers.models import Channel, Segment
from customers.services.points import points_amount_problem
from flows.document.fields import duration_problem
from flows.engine.actions import execute_group, is_template
from flows.engine.batch import Batch
from flows.engine.launch_limits import give_back_launches, take_launches, touch_last_step
from flows.nodes.base import NodeKind, Problem, ValidationContext, register, unknown_fields
from flows.nodes.event import event_type_problem
from flows.nodes.limitation import consume_reservations
from maestra.durations import parse_duration

MAX_STEPS = 100
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
    fields = ("relevance", "steps")

    def config_problems(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = []
        if "relevance" not in config:
            problems.append(Problem("relevance", "missing: how long the steps stay relevant (e.g. P1D)"))
        elif message := duration_problem(config["relevance"]):
            problems.append(Problem("relevance", message))
        steps = config.get("steps")
        if not isinstance(steps, list) or not steps:
            return [*problems, Problem("steps", "must be a non-empty list of actions")]
        if len(steps) > MAX_STEPS:
            # A message keeps its step's index in a small integer column.
            return [*problems, Problem("steps", f"at most {MAX_STEPS} actions in one steps node")]
        for index, step in enumerate(steps):
            problems += _action_problems(step, f"steps.{index}", ctx)
        return problems

    def ports(self, config: dict) -> list[str]:
        return ["next"]

    def process(self, batch: Batch) -> None:
        now = batch.now
        relevance = parse_duration(batch.config["relevance"])
        deadlines: dict = {}  # runs of an audience share their clock: compute it once
        runs = []
        for run in batch.runs:
            # The group must execute before clock + relevance, the clock as it
            # stood when the run reached this node: stale messages are dropped.
            clock = run.node_clock or run.clock
            if clock not in deadlines:
                deadlines[clock] = relevance.add_to(clock, batch.graph.tz)
            if now >= deadlines[clock]:
                batch.stop(run, "relevance_expired")
            else:
                runs.append(run)
        flow_id = batch.graph.flow_id
        # The atomic launch-limit re-check before a run's first steps group.
        first = [run for run in runs if not run.launched and not run.is_test]
        taken = (
            take_launches(
                flow_id=flow_id,
                version_row=batch.graph.launch_limit,
                runs=[(run.id, run.customer_id) for run in first],
                now=now,
            )
            if first
            else set()
        )
        first_ids = {run.id for run in first}
        executing = []
        for run in runs:
            if run.id in first_ids and run.id not in taken:
                batch.stop(run, "frequency_limit")
            else:
                executing.append(run)
        expires_at = {run.id: deadlines[run.node_clock or run.clock] for run in executing}
        result = execute_group(batch=batch, runs=executing, expires_at=expires_at)
        if executing:
            batch.shared.forget_customers()
        give_back_launches(flow_id=flow_id, run_ids=[run_id for run_id in result.failed if run_id in taken])
        done = [run for run in executing if run.id not in result.failed]
        touch_last_step(
            flow_id=flow_id,
            customer_ids=sorted({run.customer_id for run in done if run.launched and not run.is_test}),
            now=now,
        )
        consume_reservations(run_ids=[run.id for run in done], flow_ids={flow_id})
        for run in executing:
            if run.id in result.failed:
                batch.stop(run, result.failed[run.id])
            else:
                if not run.is_test:
                    run.launched = True
                batch.exit(run, "next", clock=now)


def _action_problems(step: Any, prefix: str, ctx: ValidationContext) -> list[Problem]:
    if not isinstance(step, dict):
        return [Problem(prefix, 'an action must be an object with an "action" field')]
    action = step.get("action")
    if not isinstance(action, str) or action not in ACTION_FIELDS:
        return [Problem(f"{prefix}.action", f"must be one of {', '.join(ACTION_FIELDS)}")]
    problems = unknown_fields(step, ACTION_FIELDS[action], prefix)
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
    elif message := _template_render_problem(template, ctx):
        problems.append(("template", message))
    return problems


def _template_render_problem(slug: str, ctx: ValidationContext) -> str | None:
    """Why the template `slug` does not render for a sample customer, or None:
    a template saved before the check on save, or one past the render budget
    whatever the data, would otherwise fail at every send."""
    if slug not in ctx.sample_renders:
        row = ctx.template_row(slug)
        ctx.sample_renders[slug] = sample_render_problem(row) if row is not None else None
    found = ctx.sample_renders[slug]
    return f"{slug!r} does not render for a sample customer: {found[0]}: {found[1]}" if found else None


def _value_render_problem(value: Any) -> str | None:
    """Why a set_field template value does not render for a sample customer."""
    if not is_template(value):
        return None
    found = sample_render_problem({"text": value})
    return f"the template does not render for a sample customer: {found[1]}" if found else None


def _issue_promo_code(step: dict, ctx: ValidationContext) -> list[tuple[str, str]]:
    pool = step.get("pool")
    if not isinstance(pool, str) or not pool:
        return [("pool", "missing: the slug of the promo code pool")]
    if pool not in ctx.pools:
        return [("pool", f"no promo code pool {pool!r}")]
    return []


def _points(step: dict, ctx: ValidationContext) -> list[tuple[str, str]]:
    problems = []
    if message := points_amount_problem(step.get("amount")):
        problems.append(("amount", message))
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
    elif message := _value_render_problem(step["value"]):
        problems.append(("value", message))
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
