"""The engine moves batches of runs between nodes; it does nothing else.

One batch = up to MAESTRA_BATCH_SIZE due runs, claimed with
SELECT … FOR UPDATE SKIP LOCKED in one short transaction, so any number of
workers on any number of machines share the work. Inside the transaction the
runs are loaded as plain rows, every node kind processes its group of runs in
one go (flows/nodes/<kind>.py), and the results are written back with a fixed
number of bulk statements. If the worker dies, the transaction rolls back and
the same runs are due again: re-processing produces the same result (seeded
draws, unique keys), so nothing happens twice.

Fault isolation (SPEC §12): a batch that raises is rolled back and split in
halves until the run that makes it raise is found; that run alone stops with
`engine_error` (the error kept on it), every other run of the batch is
processed. Batches that do not raise cost exactly what they did before: the
split happens only after a failure.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import OperationalError, transaction

from flows.engine.batch import (
    ENGINE_ERROR,
    IN_FLIGHT,
    PASS_COLUMNS,
    RUN_COLUMNS,
    Batch,
    BatchData,
    Complete,
    EngineContext,
    Exit,
    RunState,
    Stop,
    Wait,
)
from flows.engine.goals import EXIT_CRITERIA, exiting_runs
from flows.models import NodePass, Run
from flows.nodes import get_kind
from flows.nodes.limitation import release_reservations
from maestra import sql
from maestra.faults import error_text, is_system_error

log = logging.getLogger(__name__)


# --- Claiming and moving -----------------------------------------------------


def claim_due_runs(*, ctx: EngineContext, limit: int, ids: list[int] | None = None) -> list[RunState]:
    """Lock up to `limit` due runs that no other worker holds (call inside a
    transaction); only those of `ids` when given (a batch being split). SKIP
    LOCKED here and only here: a run another worker holds is simply someone
    else's work, whereas a skipped limitation counter or launch record would
    be over-granted (those are locked and waited for)."""
    flow_ids = ctx.movable_flow_ids()
    if not flow_ids:
        return []
    qs = Run.objects.filter(status__in=IN_FLIGHT, due_at__lte=ctx.now, flow_id__in=flow_ids)
    if ids is not None:
        qs = qs.filter(id__in=sql.in_values(ids))
    qs = (
        qs.exclude(id__in=ctx.capped)
        .order_by("due_at", "id")
        .select_for_update(skip_locked=True, of=("self",))
    )
    # Tuples, not dicts: this is per run, on every batch.
    return [RunState(*row) for row in qs.values_list(*RunState.FIELDS)[:limit]]


StatKey = tuple[int, str, datetime, str, bool]  # (flow_id, node_key, hour, metric, is_test)


@dataclass
class BatchResult:
    moved: int = 0
    completed: int = 0
    stopped: int = 0
    waiting: int = 0
    # Node passes to record, as rows of PASS_COLUMNS, and the stats each one
    # carries: a stat is counted only if its pass is recorded for the first
    # time, so a batch processed twice never counts twice.
    passes: list[dict] = field(default_factory=list)
    pass_stats: dict[tuple[int, int], list[StatKey]] = field(default_factory=dict)
    ended_run_ids: list[int] = field(default_factory=list)
    # Runs that hit the per-tick pass cap (or got no verdict): the rest of the
    # tick leaves them alone. Merged into the context once the batch commits.
    capped: set[int] = field(default_factory=set)
    # Passes made by each run in this batch (a loop shows up here).
    passes_now: Counter = field(default_factory=Counter)
    # Runs stopped with engine_error (only when the batch had to be split).
    errors: int = 0

    def merge(self, other: BatchResult) -> None:
        """Add the counts of a part of a split batch (its rows are written)."""
        self.moved += other.moved
        self.completed += other.completed
        self.stopped += other.stopped
        self.waiting += other.waiting
        self.errors += other.errors
        self.capped |= other.capped


def _migrate_to_live_version(run: RunState, ctx: EngineContext, result: BatchResult) -> None:
    """Runs of an older version continue in the live one by node key (SPEC §4)."""
    flow = ctx.flows.get(run.flow_id)
    if run.is_test or flow is None or flow["live_version_id"] in (None, run.version_id):
        return
    old_node = ctx.graph(run.version_id).nodes.get(run.node_key)
    new_graph = ctx.graph(flow["live_version_id"])
    new_node = new_graph.nodes.get(run.node_key)
    run.changed = True
    if new_node is None or old_node is None or new_node.kind != old_node.kind:
        # Stopped where it stands: the pass is recorded under the version
        # that still has the node.
        run.outcome = Stop("node_deleted")
        return
    run.version_id = new_graph.version_id


def move_batch(
    runs: list[RunState], *, ctx: EngineContext, events: dict[int, dict] | None = None
) -> BatchResult:
    """Process the runs through as many nodes as they can go right now
    (`events`: their trigger events by id, when the caller has them).

    Each round hands every node its group of runs at once. Groups are taken
    in a fixed order (flow, node key, version), so two workers whose batches
    meet at the same limitation nodes lock their counters in the same order."""
    result = BatchResult()
    shared = BatchData(runs, events=events)
    cap = settings.MAESTRA_MAX_PASSES_PER_TICK
    for run in runs:
        run.outcome = None
        _migrate_to_live_version(run, ctx, result)
    for run in exiting_runs(runs, ctx=ctx):  # exit criteria met (SPEC §13): stopped before any further node
        run.outcome = Stop(EXIT_CRITERIA)
    pending = list(runs)
    while pending:
        groups: dict[tuple[int, str], list[RunState]] = defaultdict(list)
        for run in pending:
            if run.outcome is None:
                groups[(run.version_id, run.node_key)].append(run)
        order = sorted(groups, key=lambda group: (ctx.graph(group[0]).flow_id, group[1], group[0]))
        for version_id, node_key in order:
            group = groups[(version_id, node_key)]
            graph = ctx.graph(version_id)
            node = graph.nodes.get(node_key)
            if node is None:
                for run in group:
                    run.outcome = Stop("node_deleted")
                continue
            kind = get_kind(node.kind)
            if kind is None:
                for run in group:
                    run.outcome = Stop("unknown_node_kind")
                continue
            try:
                kind.process(Batch(ctx=ctx, graph=graph, node=node, runs=group, shared=shared))
            except Exception as exc:
                # Say where it happened: the run may have passed several nodes
                # in this batch, and the error is kept on it if it is the poison.
                exc.add_note(f"at node {node_key!r} ({node.kind}) of flow {graph.flow_id}")
                raise
        next_pending = []
        for run in pending:
            if _apply_outcome(run, ctx=ctx, result=result, cap=cap):
                next_pending.append(run)
        pending = next_pending
    return result


def _record_pass(
    run: RunState, *, ctx: EngineContext, port: str, stop_reason: str, result: BatchResult
) -> list[StatKey]:
    graph = ctx.graph(run.version_id)
    node = graph.nodes.get(run.node_key)
    result.passes.append(
        {
            "run_id": run.id,
            "version_id": run.version_id,
            "node_key": run.node_key,
            "kind": node.kind if node else "",
            "pass_no": run.seq,
            "at": run.node_entered_at,
            "port": port,
            "exited_at": ctx.now,
            "stop_reason": stop_reason,
        }
    )
    metric = f"stop:{stop_reason}" if stop_reason else f"exit:{port}"
    stats = [(run.flow_id, run.node_key, ctx.hour, metric, run.is_test)]
    result.pass_stats[(run.id, run.seq)] = stats
    return stats


def _end(run: RunState, *, ctx: EngineContext, status: str, reason: str, result: BatchResult) -> None:
    run.status = status
    run.stop_reason = reason
    run.ended_at = ctx.now
    run.due_at = None
    run.changed = True
    result.ended_run_ids.append(run.id)
    if status == Run.Status.COMPLETED:
        result.completed += 1
    else:
        result.stopped += 1


def _apply_outcome(run: RunState, *, ctx: EngineContext, result: BatchResult, cap: int) -> bool:
    """Write the node's verdict into the run; True if the run goes on now."""
    outcome = run.outcome
    run.outcome = None
    if outcome is None:
        # A kind that gave no verdict leaves the run where it is, due again on
        # a later tick; this tick must not claim it over and over.
        result.capped.add(run.id)
        return False
    run.changed = True
    if isinstance(outcome, Stop):
        _record_pass(run, ctx=ctx, port="", stop_reason=outcome.reason, result=result)
        _end(run, ctx=ctx, status=Run.Status.STOPPED, reason=outcome.reason, result=result)
        return False
    if isinstance(outcome, Wait):
        run.status = Run.Status.WAITING
        run.due_at = outcome.until
        result.waiting += 1
        if outcome.until <= ctx.now:
            # Due again at once: the next tick wakes it, this one must not
            # claim it over and over.
            result.capped.add(run.id)
        return False
    if isinstance(outcome, Complete):
        _record_pass(run, ctx=ctx, port=outcome.port, stop_reason="", result=result)
        _end(run, ctx=ctx, status=Run.Status.COMPLETED, reason="", result=result)
        return False
    assert isinstance(outcome, Exit)
    stats = _record_pass(run, ctx=ctx, port=outcome.port, stop_reason="", result=result)
    graph = ctx.graph(run.version_id)
    target = graph.edges.get((run.node_key, outcome.port))
    if target is None:
        # A port with no edge: the run ends there, completed.
        _end(run, ctx=ctx, status=Run.Status.COMPLETED, reason="", result=result)
        return False
    run.node_key = target
    run.seq += 1
    run.status = Run.Status.ACTIVE
    run.node_entered_at = ctx.now
    run.node_clock = run.clock
    run.due_at = ctx.now
    result.moved += 1
    stats.append((run.flow_id, target, ctx.hour, "entered", run.is_test))
    # Only passes within one batch are counted: a run leaves a batch either
    # ended, waiting for a later moment, or capped, so it is never claimed
    # twice in a tick unless it loops — and the batch sees the whole loop.
    result.passes_now[run.id] += 1
    if result.passes_now[run.id] >= cap:
        # A loop between nodes (or flows) must not spin inside one tick: the
        # run is due again and continues on the next tick.
        result.capped.add(run.id)
        return False
    return True


def write_batch(runs: list[RunState], result: BatchResult, *, stats: Counter | None = None) -> None:
    """Write a processed batch back: a fixed number of statements whatever its
    size. Stats go last (with `stats`, counted by the caller): once a worker
    holds a stats bucket it only commits, so no lock cycle can run through the
    buckets every batch touches."""
    sql.bulk_update(
        Run._meta.db_table,
        key="id",
        columns=RUN_COLUMNS,
        rows=[(run.id, *(getattr(run, column) for column in RUN_COLUMNS)) for run in runs if run.changed],
    )
    recorded = sql.insert_rows(
        NodePass._meta.db_table,
        columns=PASS_COLUMNS,
        rows=result.passes,
        on_conflict=("run_id", "pass_no"),
        returning=("run_id", "pass_no"),
    )
    if result.ended_run_ids:
        ended = set(result.ended_run_ids)
        release_reservations(
            run_ids=result.ended_run_ids, flow_ids={run.flow_id for run in runs if run.id in ended}
        )
    stats = Counter(stats or {})
    for key in recorded:
        stats.update(result.pass_stats.get(tuple(key), ()))
    sql.increment_node_stats(stats)


# PostgreSQL aborts one of two transactions that wait on each other
# (deadlock_detected) or that conflict under serializable isolation; the
# batch rolled back as a whole, so it is simply claimed and done again.
RETRYABLE_SQLSTATES = ("40P01", "40001")
BATCH_ATTEMPTS = 3


def _is_retryable(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in RETRYABLE_SQLSTATES


def process_batch(*, ctx: EngineContext, limit: int) -> tuple[list[RunState], BatchResult] | None:
    """Claim, move and write one batch in one transaction (retried when the
    database aborts it to break a deadlock). None when nothing is due.

    A batch that raises for any other reason holds a poison run (an input no
    validator caught, data stored before a bound existed, a bug one customer's
    data triggers): it is split until that run is found (`_isolate`), and the
    rest of the batch is processed as usual. Errors of the system itself (the
    database went away, see maestra.faults) propagate: no run is to blame."""
    claimed: list[int] = []
    try:
        return _process_claimed(ctx=ctx, limit=limit, claimed=claimed)
    except Exception as exc:
        if is_system_error(exc) or not claimed:
            raise
        log.warning("batch of %d runs raised %s; splitting it to find the run", len(claimed), error_text(exc))
        return _isolate(claimed, ctx=ctx)


def _process_claimed(
    *, ctx: EngineContext, limit: int, claimed: list[int], ids: list[int] | None = None
) -> tuple[list[RunState], BatchResult] | None:
    """One batch in one transaction; `claimed` receives the ids it claimed."""
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                runs = claim_due_runs(ctx=ctx, limit=limit, ids=ids)
                if not runs:
                    return None
                claimed[:] = [run.id for run in runs]
                result = move_batch(runs, ctx=ctx)
                write_batch(runs, result)
        except OperationalError as exc:
            if attempt == BATCH_ATTEMPTS or not _is_retryable(exc):
                raise
            log.warning(
                "batch rolled back (%s), attempt %d of %d", exc.__cause__.sqlstate, attempt, BATCH_ATTEMPTS
            )
            ctx.retried += 1
            continue
        ctx.capped |= result.capped
        return runs, result
    raise AssertionError("unreachable")


def move_entered(
    runs: list[RunState], *, ctx: EngineContext, events: dict[int, dict], stats: Counter
) -> tuple[list[RunState], BatchResult] | None:
    """Move runs that entered in the caller's transaction (an event start)
    on at once, as a batch of their own: no other worker can see them before
    the commit, so they need no claim, and their trigger events are at hand
    (`events`). `stats`: the entry's counters, written last with the batch's.

    Runs of a flow whose runs do not move now (run_flow's filter, a flow past
    its end) or of a version this pass does not see as live are left as they
    are, due now, for process_due_runs. In a savepoint: if the batch raises,
    nothing of it stays and the runs wait, due, for process_due_runs, which
    finds the run at fault (_isolate). Returns the runs moved and the
    result, None when none moved; the caller merges `capped` of the result
    once its transaction has committed."""
    movable = set(ctx.movable_flow_ids())
    runs = [
        run
        for run in runs
        if run.flow_id in movable and ctx.flows[run.flow_id]["live_version_id"] == run.version_id
    ]
    if runs:
        try:
            with transaction.atomic():
                result = move_batch(runs, ctx=ctx, events=events)
                write_batch(runs, result, stats=stats)
            return runs, result
        except Exception as exc:
            # A deadlock aborted the savepoint alone: process_due_runs retries.
            retryable = isinstance(exc, OperationalError) and _is_retryable(exc)
            if is_system_error(exc) and not retryable:
                raise
            log.warning(
                "%d runs that just entered raised %s; left for the next batch", len(runs), error_text(exc)
            )
    sql.increment_node_stats(stats)
    return None


def _isolate(run_ids: list[int], *, ctx: EngineContext) -> tuple[list[RunState], BatchResult]:
    """Process the runs of a batch that raised, in halves, recursively, until
    each failing part is one run; stop that run with `engine_error`.

    Re-claim rather than savepoints: each part is claimed afresh from the
    committed rows, in its own transaction, like any batch. The failed attempt
    may have changed the RunState objects and the batch's loaded rows half-way
    through (outcomes, clocks, customers); reading the runs again gives every
    attempt the same clean start, so re-processing stays exactly as idempotent
    as after a crash (seeded draws, unique keys). A part that succeeds commits
    at once and releases its row locks, and a run another worker claimed
    meanwhile is simply skipped (SKIP LOCKED). A batch of N runs with one
    poison run costs about 2·log2(N) extra transactions; only a batch that
    raised ever pays it."""
    done: list[RunState] = []
    total = BatchResult()
    parts = [run_ids]
    while parts:
        ids = parts.pop()
        claimed: list[int] = []
        try:
            processed = _process_claimed(ctx=ctx, limit=len(ids), claimed=claimed, ids=ids)
        except Exception as exc:
            if is_system_error(exc):
                raise
            if len(claimed) > 1:
                half = len(claimed) // 2
                parts += [claimed[half:], claimed[:half]]  # the first half next
            elif claimed:
                stopped = _stop_on_engine_error(claimed[0], ctx=ctx, error=exc)
                if stopped is not None:
                    done.append(stopped)
                    total.stopped += 1
                    total.errors += 1
            else:
                raise  # it failed before claiming anything: not a run's fault
            continue
        if processed is not None:
            runs, result = processed
            done += runs
            total.merge(result)
    ctx.errors += total.errors
    return done, total


def _stop_on_engine_error(run_id: int, *, ctx: EngineContext, error: Exception) -> RunState | None:
    """Stop the one run that makes its batch raise: stop_reason engine_error,
    the error text on the run, its pass recorded at the node where it stood
    (and any limitation place it held given back), so it is never claimed
    again and never blocks the claim order. None when another worker holds it
    or it ended meanwhile."""
    text = error_text(error)
    log.error("run %s stopped with %s: %s", run_id, ENGINE_ERROR, text, exc_info=error)
    try:
        with transaction.atomic():
            row = (
                Run.objects.filter(id=run_id, status__in=IN_FLIGHT)
                .select_for_update(skip_locked=True, of=("self",))
                .values_list(*RunState.FIELDS)
                .first()
            )
            if row is None:
                return None
            run = RunState(*row)
            result = BatchResult()
            _record_pass(run, ctx=ctx, port="", stop_reason=ENGINE_ERROR, result=result)
            _end(run, ctx=ctx, status=Run.Status.STOPPED, reason=ENGINE_ERROR, result=result)
            write_batch([run], result)
            Run.objects.filter(id=run_id).update(error=text)
            return run
    except Exception as exc:
        if is_system_error(exc):
            raise
        # Recording the pass failed too (its graph cannot be loaded, say): stop
        # the run with one plain UPDATE, so it cannot block the engine.
        log.exception("run %s: could not record its stop; stopping it plainly", run_id)
    with transaction.atomic():
        stopped = Run.objects.filter(id=run_id, status__in=IN_FLIGHT).update(
            status=Run.Status.STOPPED, stop_reason=ENGINE_ERROR, error=text, ended_at=ctx.now, due_at=None
        )
    if not stopped:
        return None
    return RunState(*Run.objects.filter(id=run_id).values_list(*RunState.FIELDS).get())


def process_due_runs(*, ctx: EngineContext | None = None, max_batches: int | None = None) -> dict[str, int]:
    """Move due runs batch after batch until none is due (or max_batches)."""
    ctx = ctx or EngineContext()
    totals = Counter()
    batches = 0
    retried_before = ctx.retried
    errors_before = ctx.errors
    while max_batches is None or batches < max_batches:
        done = process_batch(ctx=ctx, limit=settings.MAESTRA_BATCH_SIZE)
        if done is None:
            break
        runs, result = done
        batches += 1
        totals.update(
            runs=len(runs),
            moved=result.moved,
            completed=result.completed,
            stopped=result.stopped,
            waiting=result.waiting,
        )
    totals["batches"] = batches
    if ctx.retried > retried_before:
        totals["retried"] = ctx.retried - retried_before
    if ctx.errors > errors_before:
        totals["errors"] = ctx.errors - errors_before
    return dict(totals)
