"""A large fire enters in parts (SPEC §8): the fire's transaction (firing.py)
records FirePart rows, each a customer-id range of about MAESTRA_BATCH_SIZE
audience customers; every worker takes parts (SELECT … FOR UPDATE SKIP
LOCKED), and each part enters and moves on in ONE transaction of its own:

    INSERT … SELECT the runs of the part's customers that the launch limit
    lets in (flows.engine.entry.entering_customers, the rule of the audience
    preview), count them at the start node, move them on at once (the tick
    passes flows.engine.move.move_entered: no claim, the runs are at hand),
    delete the part, commit.

A worker that dies rolls its part back whole: the part is a plain row again,
taken by the next tick of any worker; nothing entered twice, nobody lost.
The flow's state is read again in each part's transaction: once the version
is no longer live, the flow no longer takes new runs (paused, stopped,
archived) or its end date has passed, the fire's remaining parts are dropped
(a pause during a fire stops the rest of it from entering). A part that
raises is rolled back and tried again on a later tick; after
MAX_PART_ATTEMPTS its fire's remaining parts are dropped and the flow's
audit log says why, like a fire that raised (firing._skip_failed_fire)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import OperationalError, transaction

from flows.engine.batch import EngineContext, RunState, hour_of
from flows.engine.entry import (
    ENTERING_STATUSES,
    analyse_after_entry,
    entering_customers,
    insert_runs,
    start_node,
    within_schedule,
)
from flows.models import FirePart, FlowVersion, Run
from flows.nodes.schedule.firing import fire_audience
from maestra import sql
from maestra.audit import log as audit
from maestra.faults import error_text, is_system_error

log = logging.getLogger(__name__)

# Moves runs that just entered, inside the part's transaction (the tick
# passes flows.engine.move.move_entered, which sits above the node kinds).
MoveEntered = Callable[..., Any]

# A part that raised this many times drops its fire's remaining parts.
MAX_PART_ATTEMPTS = 3
# Deadlocks and serialization failures: the part is simply done again (at
# most this many times in one pass), like a batch of runs.
RETRYABLE_SQLSTATES = ("40P01", "40001")
PART_DB_ATTEMPTS = 3


def enter_fire_parts(*, ctx: EngineContext | None = None, move: MoveEntered | None = None) -> dict[str, int]:
    """Enter parts of fires until none is left that no other worker holds.

    With `move`, the runs of each part move on at once in the part's
    transaction; their counts come back as "moved.<runs|moved|…>". Without
    it they wait, due, for process_due_runs. "runs_started": runs entered;
    "parts_done": parts entered; "parts_dropped": parts of fires that may no longer
    enter; "errors": parts that raised (rolled back, left for a later tick)."""
    ctx = ctx or EngineContext()
    counts: Counter = Counter()
    failed: set[int] = set()  # parts that raised: not again in this pass
    aborted: Counter = Counter()  # parts the database rolled back to break a deadlock
    while True:
        claimed: list[int] = []
        try:
            done = _enter_part(ctx=ctx, move=move, exclude=failed, claimed=claimed)
        except OperationalError as exc:
            # Rolled back whole: taken and done again, as a batch of runs is
            # (flows.engine.move.process_batch).
            retryable = getattr(exc.__cause__, "sqlstate", None) in RETRYABLE_SQLSTATES
            if not claimed or not retryable or aborted[claimed[0]] + 1 >= PART_DB_ATTEMPTS:
                raise
            aborted[claimed[0]] += 1
            log.warning("fire part %s rolled back (%s), done again", claimed[0], exc.__cause__.sqlstate)
            continue
        except Exception as exc:
            if is_system_error(exc) or not claimed:
                raise
            failed.add(claimed[0])
            counts["errors"] += 1
            counts["parts_dropped"] += _part_failed(claimed[0], error=exc)
            continue
        if done is None:
            break
        counts.update(done)
    return dict(counts)


def _enter_part(
    *, ctx: EngineContext, move: MoveEntered | None, exclude: set[int], claimed: list[int]
) -> Counter | None:
    """One part in one transaction; None when no part is left to take.
    `claimed` receives the part's id as soon as it is locked."""
    now = ctx.now
    counts: Counter = Counter()
    with transaction.atomic():
        part = (
            FirePart.objects.exclude(id__in=sorted(exclude))
            .order_by("id")
            .select_for_update(skip_locked=True)
            .first()
        )
        if part is None:
            return None
        claimed[:] = [part.pk]
        # Read afresh in this transaction: the flow may have been paused,
        # stopped or relaunched since the fire started.
        version = FlowVersion.objects.select_related("flow").get(pk=part.version_id)
        start = start_node(version)
        audience = None
        if start is not None and _may_enter(version, part=part, now=now):
            audience = fire_audience(version, start)
        if audience is None:
            dropped = _drop_parts(version_id=part.version_id, clock=part.clock)
            log.info(
                "flow %s v%s: fire of %s stopped, %d parts dropped",
                version.flow_id,
                version.number,
                part.clock,
                dropped,
            )
            return Counter(parts_dropped=dropped)
        ids = (
            entering_customers(
                version=version, audience=audience, now=now, id_range=(part.after_id, part.upto_id)
            )
            .order_by("id")
            .values("id")
        )
        rows = insert_runs(version=version, start_key=start.key, ids=ids, clock=part.clock, now=now)
        runs = [
            _entered_state(run_id, customer_id, version, start.key, part.clock, now)
            for run_id, customer_id in rows
        ]
        stats: Counter = Counter()
        if runs:
            stats[(version.flow_id, start.key, hour_of(now), "entered", version.is_test)] = len(runs)
        moved = None
        if move is not None and runs:
            # The entry's counter goes with the moved batch's, last (write_batch).
            moved = move(runs, ctx=ctx, events={}, stats=stats)
        else:
            sql.increment_node_stats(stats)
        part.delete()
        counts.update(parts_done=1, runs_started=len(runs))
    if moved is not None:
        counts.update(ctx.moved_on_entry(moved))  # committed
    # The fire's last part (seen after this commit, so at least one of two
    # workers finishing together sees it): the claims that follow plan with
    # the new runs counted.
    if not FirePart.objects.filter(version_id=part.version_id, clock=part.clock).exists():
        analyse_after_entry(part.fire_size)
    return counts


def _may_enter(version: FlowVersion, *, part: FirePart, now: datetime) -> bool:
    flow = version.flow
    return (
        flow.live_version_id == version.pk
        and flow.status in ENTERING_STATUSES
        and within_schedule(version, now, trigger_at=part.clock)
    )


def _entered_state(
    run_id: int, customer_id: int, version: FlowVersion, node_key: str, clock: datetime, now: datetime
) -> RunState:
    """A run just written by insert_runs, as the engine holds it."""
    return RunState.entered(
        id=run_id,
        flow_id=version.flow_id,
        version_id=version.pk,
        customer_id=customer_id,
        trigger_event_id=None,
        is_test=version.is_test,
        status=Run.Status.ACTIVE,
        node_key=node_key,
        clock=clock,
        now=now,
    )


def _drop_parts(*, version_id: int, clock: datetime) -> int:
    """Delete the fire's parts no other worker holds (call inside a
    transaction; a held part is dropped by its holder, who reads the same
    state): never wait on another worker's part, so two workers dropping
    the same fire cannot deadlock."""
    ids = list(
        FirePart.objects.filter(version_id=version_id, clock=clock)
        .order_by("id")
        .select_for_update(skip_locked=True)
        .values_list("id", flat=True)
    )
    if not ids:
        return 0
    FirePart.objects.filter(id__in=ids).delete()
    return len(ids)


def _part_failed(part_id: int, *, error: Exception) -> int:
    """A part that raised (its transaction rolled back, nobody of it
    entered): count the attempt; at MAX_PART_ATTEMPTS drop the fire's
    remaining parts and say so in the flow's audit log. Returns the parts
    dropped."""
    text = error_text(error)
    log.error("fire part %s failed: %s", part_id, text, exc_info=error)
    with transaction.atomic():
        part = FirePart.objects.select_for_update(skip_locked=True).filter(pk=part_id).first()
        if part is None:
            return 0
        part.attempts += 1
        if part.attempts < MAX_PART_ATTEMPTS:
            part.save(update_fields=["attempts"])
            return 0
        dropped = _drop_parts(version_id=part.version_id, clock=part.clock)
        version = FlowVersion.objects.select_related("flow").get(pk=part.version_id)
        audit.log(
            "flow.schedule_failed",
            subject=version.flow,
            data={
                "version": version.number,
                "error": text,
                "fire": part.clock.isoformat(),
                "parts_dropped": dropped,
            },
        )
        return dropped
