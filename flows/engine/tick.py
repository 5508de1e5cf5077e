"""One pass of everything that is due (SPEC §8), shared by `flows_tick`, the
periodic django-q2 task (flows.tasks.sweep_task) and the tests that travel
in time. It sits above the lifecycle (pending launches are finished first).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from django.conf import settings

from channels.delivery import drain
from flows.engine.ab_winner import decide_winners
from flows.engine.batch import EngineContext
from flows.engine.move import move_entered, process_due_runs

# Above the lifecycle: a tick first finishes the launches that are due.
from flows.lifecycle.launch import finish_pending_launches_counted
from flows.nodes.event import match_events
from flows.nodes.schedule.firing import fire_schedules
from flows.nodes.schedule.parts import enter_fire_parts
from maestra.batch_gc import fewer_collections
from maestra.faults import error_text, is_system_error

log = logging.getLogger(__name__)

# Events emitted by steps can start other flows within the same tick; the
# chain is bounded by event depth, and this bounds the rounds as well.
MAX_ROUNDS = 10
# Batches of events matched per round at most (the rest: next round or tick).
MAX_EVENT_BATCHES = 100


def tick(*, deliver: bool = True) -> dict[str, int]:
    """Pending launches, due schedules (and parts of fires), runs started by events, due timers
    (repeating until nothing is due or a cap is hit), then the outbox.

    No input stops it (SPEC §12): each step isolates what fails (a launch
    goes back to its previous status, a fire is skipped, an event or a run
    stops with `engine_error`) and reports it as `<step>.errors`. A step that
    raises anyway is logged and counted as `errors.<step>`, and the others
    still run. Only errors of the system itself (the database went away, see
    maestra.faults) propagate."""
    with fewer_collections():  # a tick allocates much and keeps little (maestra/batch_gc.py)
        return _tick(deliver=deliver)


def _tick(*, deliver: bool) -> dict[str, int]:
    totals: Counter = Counter()
    launches = _guarded("launches", finish_pending_launches_counted, totals)
    totals["launches_finished"] = launches.get("finished", 0)
    totals["launches.errors"] = launches.get("errors", 0)
    ctx = EngineContext()
    totals.update(_prefixed("schedules", _guarded("schedules", lambda: fire_schedules(ctx=ctx), totals)))
    # Large fires enter in parts that every worker shares (any fire's parts,
    # also those of a worker that died); each part's runs move on in the
    # part's own transaction (no claim).
    parts = _guarded("fire_parts", lambda: enter_fire_parts(ctx=ctx, move=move_entered), totals)
    totals.update(
        _prefixed("runs", {key[6:]: parts.pop(key) for key in list(parts) if key.startswith("moved.")})
    )
    totals.update(_prefixed("schedules", parts))
    for _ in range(MAX_ROUNDS):
        matched = Counter()
        moved_on_entry = Counter()
        for _ in range(MAX_EVENT_BATCHES):
            # The runs events start move on in the same transaction (no claim).
            part = _guarded(
                "events",
                lambda: match_events(ctx=ctx, limit=settings.MAESTRA_BATCH_SIZE, move=move_entered),
                totals,
            )
            moved_on_entry.update({key[6:]: part.pop(key) for key in list(part) if key.startswith("moved.")})
            matched.update(part)
            # A short batch means we caught up; events arriving meanwhile wait
            # for the next round or tick, so a steady stream cannot hold a tick.
            if part.get("events", 0) < settings.MAESTRA_BATCH_SIZE:
                break
        moved = _guarded("runs", lambda: process_due_runs(ctx=ctx), totals)
        totals.update(_prefixed("events", matched))
        totals.update(_prefixed("runs", moved_on_entry))
        totals.update(_prefixed("runs", moved))
        if not matched and not moved.get("runs"):
            break
    # A/B winners (SPEC §13): one aggregate query per undecided node whose
    # variants reached their minimum sample.
    totals.update(_prefixed("ab_winners", _guarded("ab_winners", decide_winners, totals)))
    if deliver:
        totals.update(_prefixed("messages", _guarded("messages", drain, totals)))
    return {key: value for key, value in totals.items() if value}


def _guarded(step: str, work: Callable[[], dict], totals: Counter) -> dict:
    """`work()`, or {} after logging an error it raised (counted as
    errors.<step>): one step failing must not keep the tick from the others."""
    try:
        return work()
    except Exception as exc:
        if is_system_error(exc):
            raise
        log.exception("flows tick: %s failed: %s", step, error_text(exc))
        totals[f"errors.{step}"] += 1
        return {}


def error_count(counts: dict[str, int]) -> int:
    """All errors a tick reports (launches, fires, events and runs stopped
    with engine_error, steps that raised)."""
    return sum(value for key, value in counts.items() if key.endswith(".errors") or key.startswith("errors."))


def _prefixed(prefix: str, counts: dict) -> dict[str, int]:
    return {f"{prefix}.{key}": value for key, value in counts.items()}
