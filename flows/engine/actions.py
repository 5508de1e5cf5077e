"""Carrying out a steps group for a whole batch of runs (SPEC §7).

The steps node (flows/nodes/steps.py) hands over the runs whose group
executes now; `execute_group` runs the group's steps in order, each step ONE
bulk call for all those runs (never a query per customer), into `customers`
(promo codes, points, fields, segments, events) or `channels` (the outbox).

What each action does
- send: one outbox row per run (channels.outbox.queue_messages), rendered
  with `customer`, `event` (the trigger event's payload), `promo_code` (the
  code an earlier issue_promo_code step of the same group issued, else "")
  and `flow` ({"name", "id"}). Consent and addresses are decided there: a
  message that may not go is stored `not_sent` with its reason and still
  counts as an attempt (a launch). The worker sends after the commit.
- issue_promo_code: one free code of the pool per run; the code goes into the
  context of the later steps of the group.
- points: ± amount, optional expiry `expires_in` counted from now (not from
  the run's clock) in the flow's time zone, so "P30D" keeps the local wall
  time across a DST change; `reason` defaults to "flow <name>".
- set_field: a profile attribute (email, phone, first_name, last_name,
  timezone) or a key of customer.fields. The value is stored as given (any
  JSON value), except a **template**: a string containing "{{" or "{%" is
  rendered per customer in the sandbox (channels.rendering.render_string)
  with the same context as a message, and the rendered text is stored (a
  string). A literal "{{" is written with {% templatetag openvariable %}.
  All customers are written with one statement (set_field_values). The
  customer data a template sees is the batch's snapshot, taken before the
  group's own set_field steps.
- add_to_segment / remove_from_segment: static segments, one statement each.
- emit_event: one event per customer, stored unprocessed like any event, so
  it starts flows through the normal matching (this tick's next round or the
  next tick). It is one level deeper than the run's trigger event (a
  schedule-started run emits at depth 1); events deeper than
  settings.MAESTRA_MAX_EVENT_DEPTH are dropped, which ends loops between flows.

Idempotence: every write is keyed "run:node:step:pass" (points source_key,
promo issue_key, the message's unique key), so re-processing a batch after a
crash, or a retried transaction, gives nothing twice.

Failing on the spot: a run whose step cannot be carried out (empty or deleted
promo pool, template error, deleted or rule-based segment, a value a profile
attribute refuses) leaves the group at that step with the reason; its later
steps do not run and the steps node stops the run (no launch). Each step runs
in a savepoint, so a domain error leaves nothing half-written.

Test runs (a version launched as a test) render their messages, which the
outbox stores `not_sent` with reason `test_mode`, and do nothing else: a test
uses real customers, and must not hand out real promo codes (a pool is a
finite, often paid-for stock), grant points, change profiles or segments, or
emit events that would start live flows for real customers. The template
context gets a stand-in promo code instead, so the tester sees where it goes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction

from channels.models import Message
from channels.outbox import SendRequest, queue_messages
from channels.rendering import RenderError, build_context, render_string
from customers.errors import InvalidInput, SegmentNotStatic, UnknownPromoPool, UnknownSegment
from customers.services.events import store_events
from customers.services.fields import set_field_values
from customers.services.points import grant_points
from customers.services.promo_codes import issue_promo_codes
from customers.services.segments import add_to_segment, remove_from_segment
from flows.engine.batch import Batch, RunState
from maestra.durations import parse_duration

log = logging.getLogger(__name__)

# Stop reasons of a step that fails on the spot (Run.stop_reason, NodeStat "stop:<reason>").
PROMO_POOL_EMPTY = "promo_pool_empty"
PROMO_POOL_MISSING = "promo_pool_missing"
SEGMENT_MISSING = "segment_missing"
SEGMENT_NOT_STATIC = "segment_not_static"
INVALID_FIELD_VALUE = "invalid_field_value"
INVALID_STEP = "invalid_step"

# The promo code test runs show in their messages (the admin preview's stand-in).
TEST_PROMO_CODE = "PREVIEW-CODE"

TEMPLATE_MARKERS = ("{{", "{%")


def is_template(value: Any) -> bool:
    """A set_field value is a template when it is a string containing "{{" or "{%"."""
    return isinstance(value, str) and any(marker in value for marker in TEMPLATE_MARKERS)


def step_key(run: RunState, node_key: str, step_index: int) -> str:
    return f"{run.id}:{node_key}:{step_index}:{run.seq}"


@dataclass
class GroupResult:
    failed: dict[int, str] = field(default_factory=dict)  # run id -> reason

    def fail(self, run: RunState, reason: str) -> None:
        self.failed.setdefault(run.id, reason)


@dataclass
class StepCall:
    """What a handler gets: the batch, the runs still in the group, the step
    and its index, and the per-run context earlier steps filled in."""

    batch: Batch
    runs: list[RunState]
    step: dict
    index: int
    context: dict[int, dict]
    result: GroupResult
    # run id -> the end of the group's relevance (the outbox keeps it, so
    # quiet hours never hold a message past it).
    expires_at: dict[int, datetime] = field(default_factory=dict)

    def key(self, run: RunState) -> str:
        return step_key(run, self.batch.node.key, self.index)

    def customer_ids(self) -> list[int]:
        # Sorted: writes take row locks in id order, like every other batch writer.
        return sorted({run.customer_id for run in self.runs})

    def fail_all(self, reason: str) -> None:
        for run in self.runs:
            self.result.fail(run, reason)


def execute_group(
    *, batch: Batch, runs: list[RunState], expires_at: dict[int, datetime] | None = None
) -> GroupResult:
    """Run the steps node's actions in order for `runs`; returns the runs that
    failed on the spot, with the reason. `expires_at`: run id -> the end of
    the group's relevance, kept on the messages."""
    result = GroupResult()
    context: dict[int, dict] = {run.id: {} for run in runs}
    for index, step in enumerate(batch.config["steps"]):
        active = [run for run in runs if run.id not in result.failed]
        if not active:
            break
        action = step["action"]
        if action != "send":
            tests = [run for run in active if run.is_test]
            if tests and action == "issue_promo_code":
                for run in tests:
                    context[run.id]["promo_code"] = TEST_PROMO_CODE
            # Test runs change nothing real (see the module docstring).
            active = [run for run in active if not run.is_test]
            if not active:
                continue
        call = StepCall(
            batch=batch,
            runs=active,
            step=step,
            index=index,
            context=context,
            result=result,
            expires_at=expires_at or {},
        )
        _run_step(HANDLERS[action], call)
    _hold_back_messages_of_failed_groups(batch=batch, runs=runs, result=result)
    return result


def _hold_back_messages_of_failed_groups(*, batch: Batch, runs: list[RunState], result: GroupResult) -> None:
    """A group that failed on the spot is not a launch, so nothing of it may
    reach the customer: messages queued by its earlier steps (still in this
    transaction, so never sent) are recorded as not sent. Otherwise a `once`
    flow with an empty promo pool would e-mail the customer on every event."""

    failed = [run for run in runs if run.id in result.failed]
    if not failed:
        return
    by_pass: dict[int, list[int]] = {}
    for run in failed:
        by_pass.setdefault(run.seq, []).append(run.id)
    for pass_no, run_ids in by_pass.items():
        Message.objects.filter(
            run_id__in=run_ids, node_key=batch.node.key, pass_no=pass_no, status=Message.Status.QUEUED
        ).update(status=Message.Status.NOT_SENT, reason="group_failed")


def _run_step(handler: Callable[[StepCall], None], call: StepCall) -> None:
    try:
        with transaction.atomic():
            handler(call)
    except UnknownPromoPool:
        call.fail_all(PROMO_POOL_MISSING)
    except UnknownSegment:
        call.fail_all(SEGMENT_MISSING)
    except SegmentNotStatic:
        call.fail_all(SEGMENT_NOT_STATIC)
    except InvalidInput as exc:
        # Validation of the flow document should have caught it (e.g. a points
        # reason longer than the ledger keeps); the step cannot be carried out.
        log.warning(
            "steps node %r step %d of flow %s is invalid: %s",
            call.batch.node.key,
            call.index,
            call.batch.graph.flow_id,
            exc,
        )
        call.fail_all(INVALID_STEP)


def _template_context(call: StepCall, run: RunState) -> dict:
    event = call.batch.event_of(run)
    graph = call.batch.graph
    return {
        "event": (event or {}).get("payload") or {},
        "promo_code": call.context[run.id].get("promo_code", ""),
        "flow": {"name": graph.flow_name, "id": graph.flow_id},
    }


def _send(call: StepCall) -> None:
    batch, step = call.batch, call.step
    requests = [
        SendRequest(
            customer_id=run.customer_id,
            template_slug=step["template"],
            channel=step["channel"],
            run_id=run.id,
            node_key=batch.node.key,
            step_index=call.index,
            pass_no=run.seq,
            flow_id=batch.graph.flow_id,
            is_test=run.is_test,
            context=_template_context(call, run),
            expires_at=call.expires_at.get(run.id),
        )
        for run in call.runs
    ]
    outcomes = queue_messages(requests=requests)
    for run in call.runs:
        outcome = outcomes.get((run.id, batch.node.key, call.index, run.seq))
        # not_sent (no consent, no address, test mode) is still an attempt;
        # failed at render time means the step itself failed on the spot.
        if outcome is not None and outcome.failed_on_the_spot:
            call.result.fail(run, outcome.reason.split(":", 1)[0])


def _issue_promo_code(call: StepCall) -> None:
    issued = issue_promo_codes(
        pool_slug=call.step["pool"], requests=[(run.customer_id, call.key(run)) for run in call.runs]
    )
    for run in call.runs:
        code = issued.get(call.key(run))
        if code is None:
            call.result.fail(run, PROMO_POOL_EMPTY)
        else:
            call.context[run.id]["promo_code"] = code


def _points(call: StepCall) -> None:
    batch, step = call.batch, call.step
    expires_at = None
    if step.get("expires_in"):
        expires_at = parse_duration(step["expires_in"]).add_to(batch.now, batch.graph.tz)
    reason = step.get("reason") or f"flow {batch.graph.flow_name}"
    grant_points(
        entries=[
            {
                "customer_id": run.customer_id,
                "amount": int(step["amount"]),
                "reason": reason,
                "expires_at": expires_at,
                "source_key": call.key(run),
            }
            for run in call.runs
        ]
    )


def _set_field(call: StepCall) -> None:
    field_name, value = call.step["field"], call.step.get("value")
    runs_of: dict[int, list[RunState]] = {}
    for run in call.runs:
        runs_of.setdefault(run.customer_id, []).append(run)
    values: dict[int, Any] = {}
    if is_template(value):
        customers = call.batch.customers()
        for customer_id in sorted(runs_of):
            # A customer has one value: the one its first run of the batch renders.
            run = runs_of[customer_id][0]
            customer = customers.get(customer_id)
            if customer is None:
                continue  # deleted meanwhile; nothing to write
            try:
                values[customer_id] = render_string(
                    source=value,
                    context=build_context(customer=customer, extra=_template_context(call, run)),
                    field=f"set_field {field_name}",
                )
            except RenderError as exc:
                log.info("set_field template failed for customer %s: %s", customer_id, exc)
                for failed in runs_of[customer_id]:
                    call.result.fail(failed, exc.code)
    else:
        values = dict.fromkeys(sorted(runs_of), value)
    if not values:
        return
    try:
        set_field_values(field=field_name, values=values)
    except InvalidInput as exc:
        # A value the attribute refuses (an email that is not one, a time zone
        # that does not exist): those customers' steps fail, the rest is written.
        ids = list(values)
        refused = {ids[error["index"]] for error in exc.errors if "index" in error}
        if not refused:  # the field name itself
            call.fail_all(INVALID_FIELD_VALUE)
            return
        for customer_id in refused:
            for run in runs_of[customer_id]:
                call.result.fail(run, INVALID_FIELD_VALUE)
        rest = {customer_id: v for customer_id, v in values.items() if customer_id not in refused}
        if rest:
            set_field_values(field=field_name, values=rest)


def _add_to_segment(call: StepCall) -> None:
    add_to_segment(slug=call.step["segment"], customer_ids=call.customer_ids())


def _remove_from_segment(call: StepCall) -> None:
    remove_from_segment(slug=call.step["segment"], customer_ids=call.customer_ids())


def _emit_event(call: StepCall) -> None:
    # Chains between flows are capped by depth (SPEC §8): the new event is one
    # deeper than the event that started the run. One call per depth present
    # in the batch, at most MAESTRA_MAX_EVENT_DEPTH + 1 of them. One event per
    # run: a customer with two runs here emits two events, like two orders.
    now = call.batch.now
    by_depth: dict[int, list[dict]] = {}
    for run in sorted(call.runs, key=lambda run: run.id):
        depth = ((call.batch.event_of(run) or {}).get("depth") or 0) + 1
        by_depth.setdefault(depth, []).append(
            {
                # Keyed by the step pass, so a batch processed again emits nothing twice.
                "external_id": f"emit:{step_key(run, call.batch.node.key, call.index)}",
                "customer_id": run.customer_id,
                "type": call.step["event_type"],
                "occurred_at": now,
                "payload": call.step.get("payload") or {},
            }
        )
    for depth, events in sorted(by_depth.items()):
        store_events(events=events, depth=depth)


HANDLERS: dict[str, Callable[[StepCall], None]] = {
    "send": _send,
    "issue_promo_code": _issue_promo_code,
    "points": _points,
    "set_field": _set_field,
    "add_to_segment": _add_to_segment,
    "remove_from_segment": _remove_from_segment,
    "emit_event": _emit_event,
}
