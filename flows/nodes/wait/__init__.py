"""Wait: hold the run for a fixed time, until a date, and/or until an exit window opens."""

from __future__ import annotations

from typing import Any

from customers.models import Customer
from customers.rules import Path, RuleError, parse_path, read_path
from flows.document.fields import duration_problem
from flows.engine.batch import Batch
from flows.nodes.base import NodeKind, Problem, ValidationContext, register, unknown_fields
from flows.nodes.wait.windows import dynamic_target, next_open, resolve_window_tz, validate_window
from maestra import sql
from maestra.durations import parse_duration

MODE_FIELDS = {
    "fixed": ("mode", "duration", "window"),
    "dynamic": ("mode", "field", "offset", "window"),
    "window": ("mode", "window"),
}


@register
class Wait(NodeKind):
    kind = "wait"
    label = "Wait"
    # The only kind a cycle may pass through: a loop must wait between passes.
    breaks_cycles = True

    def validate(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        # Not NodeKind.validate: the allowed keys depend on the mode.
        mode = config.get("mode")
        if not isinstance(mode, str) or mode not in MODE_FIELDS:
            return [Problem("mode", 'must be "fixed", "dynamic" or "window"')]
        problems = unknown_fields(config, MODE_FIELDS[mode])
        if mode == "fixed":
            if "duration" not in config:
                problems.append(Problem("duration", "missing: how long to wait (e.g. PT24H, P3D)"))
            elif message := duration_problem(config["duration"]):
                problems.append(Problem("duration", message))
        if mode == "dynamic":
            if message := date_field_problem(config.get("field")):
                problems.append(Problem("field", message))
            # The offset may be negative (3 days before a birthday) or zero.
            if "offset" in config and (message := duration_problem(config["offset"], positive=False)):
                problems.append(Problem("offset", message))
        if mode == "window" and config.get("window") is None:
            problems.append(Problem("window", "missing: a window wait needs the exit window"))
        elif config.get("window") is not None:
            problems += window_problems(config["window"])
        return problems

    def ports(self, config: dict) -> list[str]:
        return ["next"]

    def process(self, batch: Batch) -> None:
        config = batch.config
        mode = config["mode"]
        window = config.get("window")
        now = batch.now
        customers = batch.customers() if (mode == "dynamic" or _uses_customer_tz(window)) else {}
        duration = parse_duration(config["duration"]) if mode == "fixed" else None
        offset = parse_duration(config["offset"]) if mode == "dynamic" and config.get("offset") else None
        attribute = _datetime_attribute_values(batch, config["field"]) if mode == "dynamic" else None
        field = _readable_path(config["field"]) if mode == "dynamic" and attribute is None else None
        fixed_targets: dict = {}  # runs of an audience share their clock: add the duration once
        for run in batch.runs:
            if run.status == "waiting":
                # Woke up: the wait is over (the clock was set when it began).
                batch.exit(run, "next")
                continue
            if run.is_test:
                batch.exit(run, "next", clock=now)  # test mode skips waits
                continue
            if mode == "fixed":
                target = fixed_targets.get(run.clock)
                if target is None:
                    target = fixed_targets[run.clock] = duration.add_to(run.clock, batch.graph.tz)
            elif mode == "dynamic":
                if attribute is not None:
                    value = attribute.get(run.customer_id)
                else:
                    # The rule language's reader: the same path means the same
                    # value here as in a condition (a name never indexes a list).
                    event = batch.event_of(run)
                    value = field and read_path(
                        field,
                        customer=customers.get(run.customer_id),
                        event=(event or {}).get("payload") if event else None,
                    )
                target = None if value is None else dynamic_target(value, offset=offset, tz=batch.graph.tz)
                if target is None:
                    batch.stop(run, "dynamic_wait_value_missing")
                    continue
            else:
                target = now
            leave_at = max(target, now)
            if window:
                customer = customers.get(run.customer_id) or {}
                tz = resolve_window_tz(
                    window, flow_tz=batch.graph.timezone, customer_tz=customer.get("timezone")
                )
                leave_at = next_open(window, at=leave_at, tz=tz)
                # A window moves the run's clock to the moment it leaves.
                target = leave_at
            if leave_at <= now:
                batch.exit(run, "next", clock=target)
            else:
                batch.wait(run, leave_at, clock=target)


def _readable_path(field: str) -> Path | None:
    """The dynamic wait's path when it is read from the loaded rows (a custom
    field or the event); None for one no validator let through, so its runs
    stop with dynamic_wait_value_missing rather than fail the batch."""
    try:
        path = parse_path(field)
    except RuleError:
        return None
    return path if path.kind == "json" else None


def _datetime_attribute_values(batch: Batch, field: str) -> dict[int, Any] | None:
    """customer.created_at and its like are columns the batch's customer rows
    do not carry: read them for the whole batch in one query. None for any
    other path (custom fields and the event are read from the loaded rows)."""
    try:
        path = parse_path(field)
    except RuleError:
        return None
    if path.kind != "datetime_attr":
        return None
    attr = field.split(".", 1)[1]
    ids = sorted({run.customer_id for run in batch.runs})
    return dict(Customer.objects.filter(id__in=sql.in_values(ids)).values_list("id", attr))


def date_field_problem(field: Any) -> str | None:
    """The date a dynamic wait waits for: a path of the rule language that can
    hold a date (customer.created_at, customer.fields.<name>, event.<name>)."""
    hint = "must name a date: customer.fields.<name>, customer.created_at or event.<name>"
    try:
        path = parse_path(field)
    except RuleError as error:
        return f"{error}; {hint}"
    if path.kind not in ("json", "datetime_attr"):
        return hint
    return None


def window_problems(window: Any) -> list[Problem]:
    """The exit window judged by flows.nodes.wait.windows.validate_window, the function
    the engine opens windows with (overnight windows such as 22:00–06:00 and
    whole days, from equal to to, included)."""
    return [
        Problem(f"window.{path}" if path else "window", message) for path, message in validate_window(window)
    ]


def _uses_customer_tz(window: dict | None) -> bool:
    return bool(window) and window.get("timezone") == "customer"
