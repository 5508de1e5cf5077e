"""One pass of everything that is due (SPEC §8), shared by `flows_tick`, the
periodic django-q2 task and the tests that travel in time."""

from __future__ import annotations

import logging
from collections import Counter

from django.conf import settings

from flows.engine import EngineContext, process_due_runs
from flows.entry import fire_schedules, match_events

log = logging.getLogger(__name__)

# Events emitted by steps can start other flows within the same tick; the
# chain is bounded by event depth, and this bounds the rounds as well.
MAX_ROUNDS = 10
# Batches of events matched per round at most (the rest: next round or tick).
MAX_EVENT_BATCHES = 100


def tick(*, deliver: bool = True) -> dict[str, int]:
    """Pending launches, due schedules, runs started by events, due timers
    (repeating until nothing is due or a cap is hit), then the outbox."""
    from flows.lifecycle import finish_pending_launches

    totals: Counter = Counter()
    totals["launches_finished"] = finish_pending_launches()
    ctx = EngineContext()
    totals.update(_prefixed("schedules", fire_schedules(ctx=ctx)))
    for _ in range(MAX_ROUNDS):
        matched = Counter()
        for _ in range(MAX_EVENT_BATCHES):
            part = match_events(ctx=ctx, limit=settings.MAESTRA_BATCH_SIZE)
            matched.update(part)
            # A short batch means we caught up; events arriving meanwhile wait
            # for the next round or tick, so a steady stream cannot hold a tick.
            if part.get("events", 0) < settings.MAESTRA_BATCH_SIZE:
                break
        moved = process_due_runs(ctx=ctx)
        totals.update(_prefixed("events", matched))
        totals.update(_prefixed("runs", moved))
        if not matched and not moved.get("runs"):
            break
    if deliver:
        totals.update(_prefixed("messages", deliver_outbox()))
    return {key: value for key, value in totals.items() if value}


def deliver_outbox() -> dict[str, int]:
    from channels.delivery import deliver_all_due, expire_leases

    counts = Counter(expired=expire_leases())
    counts.update(deliver_all_due())
    return dict(counts)


def _prefixed(prefix: str, counts: dict) -> dict[str, int]:
    return {f"{prefix}.{key}": value for key, value in counts.items()}


def sweep_task() -> dict[str, int]:
    """The periodic django-q2 task (registered on migrate): engine work only;
    delivery runs as its own task so a slow provider never delays timers."""
    return tick(deliver=False)


def deliver_task() -> dict[str, int]:
    return deliver_outbox()
