"""Carrying out a steps group for a whole batch of runs.

Each action is one bulk call into `customers` (points, promo codes, fields,
segments, events) or `channels` (the outbox), keyed by
"run:node:step:pass" so that nothing can happen twice. Runs whose step fails
on the spot (empty promo pool, template error) drop out of the group and are
reported back with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flows.durations import parse_duration

if TYPE_CHECKING:  # pragma: no cover
    from flows.engine import Batch, RunState


def step_key(run: RunState, node_key: str, step_index: int) -> str:
    return f"{run.id}:{node_key}:{step_index}:{run.seq}"


@dataclass
class GroupResult:
    failed: dict[int, str] = field(default_factory=dict)  # run id -> reason

    def fail(self, run: RunState, reason: str) -> None:
        self.failed.setdefault(run.id, reason)


def execute_group(*, batch: Batch, runs: list[RunState]) -> GroupResult:
    result = GroupResult()
    context: dict[int, dict] = {run.id: {} for run in runs}
    for index, step in enumerate(batch.config["steps"]):
        active = [run for run in runs if run.id not in result.failed]
        if not active:
            break
        if step["action"] != "send":
            # Test runs render their messages (recorded as not sent) but change
            # nothing real: no codes, points, fields, segments or events.
            active = [run for run in active if not run.is_test]
            if not active:
                continue
        handler = HANDLERS[step["action"]]
        handler(batch=batch, runs=active, step=step, index=index, context=context, result=result)
    return result


def _send(*, batch, runs, step, index, context, result) -> None:
    from channels.outbox import SendRequest, queue_messages

    requests = []
    for run in runs:
        event = batch.event_of(run)
        requests.append(
            SendRequest(
                customer_id=run.customer_id,
                template_slug=step["template"],
                channel=step["channel"],
                run_id=run.id,
                node_key=batch.node.key,
                step_index=index,
                pass_no=run.seq,
                flow_id=batch.graph.flow_id,
                is_test=run.is_test,
                context={
                    "event": (event or {}).get("payload") or {},
                    "promo_code": context[run.id].get("promo_code", ""),
                    "flow": {"name": batch.graph.flow_name, "id": batch.graph.flow_id},
                },
            )
        )
    outcomes = queue_messages(requests=requests)
    for run in runs:
        outcome = outcomes.get((run.id, batch.node.key, index, run.seq))
        # A message recorded as not_sent was still attempted (a launch);
        # failed at render time means the step itself failed on the spot.
        if outcome is not None and outcome.failed_on_the_spot:
            result.fail(run, outcome.reason.split(":", 1)[0])


def _issue_promo_code(*, batch, runs, step, index, context, result) -> None:
    from customers.services import issue_promo_codes

    issued = issue_promo_codes(
        pool_slug=step["pool"],
        requests=[(run.customer_id, step_key(run, batch.node.key, index)) for run in runs],
    )
    for run in runs:
        code = issued.get(step_key(run, batch.node.key, index))
        if code is None:
            result.fail(run, "promo_pool_empty")
        else:
            context[run.id]["promo_code"] = code


def _points(*, batch, runs, step, index, context, result) -> None:
    from customers.services import grant_points

    expires_at = None
    if step.get("expires_in"):
        expires_at = parse_duration(step["expires_in"]).add_to(batch.now, batch.graph.tz)
    grant_points(
        entries=[
            {
                "customer_id": run.customer_id,
                "amount": int(step["amount"]),
                "reason": step.get("reason") or f"flow {batch.graph.flow_name}",
                "expires_at": expires_at,
                "source_key": step_key(run, batch.node.key, index),
            }
            for run in runs
        ]
    )


def _set_field(*, batch, runs, step, index, context, result) -> None:
    from customers.services import set_field

    set_field(
        customer_ids=sorted({run.customer_id for run in runs}), field=step["field"], value=step.get("value")
    )


def _add_to_segment(*, batch, runs, step, index, context, result) -> None:
    from customers.services import add_to_segment

    add_to_segment(slug=step["segment"], customer_ids=sorted({run.customer_id for run in runs}))


def _remove_from_segment(*, batch, runs, step, index, context, result) -> None:
    from customers.services import remove_from_segment

    remove_from_segment(slug=step["segment"], customer_ids=sorted({run.customer_id for run in runs}))


def _emit_event(*, batch, runs, step, index, context, result) -> None:
    from customers.services import emit_events

    # Chains between flows are capped by depth (SPEC §8): the new event is one
    # deeper than the event that started the run.
    by_depth: dict[int, list[int]] = {}
    for run in runs:
        depth = (batch.event_of(run) or {}).get("depth", 0) + 1
        by_depth.setdefault(depth, []).append(run.customer_id)
    for depth, customer_ids in sorted(by_depth.items()):
        emit_events(
            customer_ids=customer_ids, event_type=step["event_type"], payload=step.get("payload") or {}, depth=depth
        )


HANDLERS = {
    "send": _send,
    "issue_promo_code": _issue_promo_code,
    "points": _points,
    "set_field": _set_field,
    "add_to_segment": _add_to_segment,
    "remove_from_segment": _remove_from_segment,
    "emit_event": _emit_event,
}
