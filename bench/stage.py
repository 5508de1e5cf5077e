"""One measured engine stage, run in a process of its own by bench/run.py.

    python bench/stage.py tick --at ISO --out FILE
        flows.engine.tick.tick(deliver=False) with the clock at ISO (time_machine,
        ticking): what `manage.py flows_tick --no-deliver` does at that moment.
    python bench/stage.py deliver --at ISO --max N --out FILE
        the delivery worker (channels.delivery.deliver_due) until the outbox is
        empty or N messages went out, through EMAIL_BACKEND (locmem or smtp).
    python bench/stage.py sweeper --out FILE --expect N
        S2's engine worker: tick(deliver=False) in a loop, in real time, until
        told to stop on stdin; prints "drained <unix time>" once N runs ended.
    python bench/stage.py timers --out FILE --lateness FILE
        an S3 worker: sweeps at the moments the coordinator sends on stdin.

Each prints (or writes to --out) JSON: seconds, queries, counts, peak RSS.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Meter, QueryCounter, parse_iso, setup_django, vm_hwm_mb, write_result


def stage_tick(args) -> dict:
    """One tick, or with --follow-flow one of several workers sharing a stage:
    each says "ready", waits for "go" on stdin (so all start together), then
    ticks until the flow has runs and none of them is due any more — what the
    periodic sweep does on every worker of a qcluster."""
    from collections import Counter

    import time_machine

    from flows.engine.tick import tick

    counter = QueryCounter().install()
    if args.follow_flow:
        print("ready", flush=True)
        sys.stdin.readline()
    with time_machine.travel(parse_iso(args.at), tick=True), Meter() as meter:
        queries = counter.count
        counts = Counter(tick(deliver=False))
        while args.follow_flow and _flow_has_due_runs(args.follow_flow):
            part = tick(deliver=False)
            counts.update(part)
            if not part.get("runs.runs") and not part.get("schedules.parts_done"):
                time.sleep(0.1)  # the other workers hold what is left
    return {
        **meter.result(),
        "queries": counter.count - queries,
        "counts": dict(counts),
        "query_seconds": counter.top(),
    }


def _flow_has_due_runs(flow_id: int) -> bool:
    """True until the flow's runs exist, none is due now (entered by another
    worker's tick, or still to be moved) and no part of a fire is left to
    enter (flows/nodes/schedule/parts.py)."""
    from django.utils import timezone

    from flows.models import FirePart, Run

    runs = Run.objects.filter(flow_id=flow_id)
    if not runs.exists() or FirePart.objects.filter(version__flow_id=flow_id).exists():
        return True
    return runs.filter(status__in=("active", "waiting"), due_at__lte=timezone.now()).exists()


def stage_deliver(args) -> dict:
    import time_machine
    from django.conf import settings
    from django.core import mail

    from channels.delivery import deliver_due

    counter = QueryCounter().install()
    locmem = settings.EMAIL_BACKEND.endswith("locmem.EmailBackend")
    totals = {"claimed": 0, "sent": 0, "retried": 0, "failed": 0}
    with time_machine.travel(parse_iso(args.at), tick=True), Meter() as meter:
        queries = counter.count
        # The loop of channels.delivery.deliver_all_due, with a cap, and with
        # locmem's in-memory outbox emptied between rounds: locmem keeps every
        # message it "sends" in mail.outbox, which would otherwise grow to
        # millions of objects and measure the test backend, not the worker.
        while totals["claimed"] < args.max:
            counts = deliver_due(limit=min(500, args.max - totals["claimed"]))
            for key in totals:
                totals[key] += counts.get(key, 0)
            if locmem:
                mail.outbox.clear()
            if counts["claimed"] == 0:
                break
    return {
        **meter.result(),
        "queries": counter.count - queries,
        "counts": totals,
        "backend": settings.EMAIL_BACKEND,
    }


def stage_sweeper(args) -> dict:
    from flows.engine.tick import tick

    counter = QueryCounter().install()
    stop = threading.Event()

    def wait_for_stop() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    ended = 0
    busy = 0.0
    drained_at = None
    ticks = 0
    meter = Meter().__enter__()
    print("ready", flush=True)
    while not stop.is_set():
        started = time.perf_counter()
        counts = tick(deliver=False)
        ticks += 1
        done = counts.get("runs.completed", 0) + counts.get("runs.stopped", 0)
        if done or counts.get("events.events"):
            busy += time.perf_counter() - started
        ended += done
        if drained_at is None and args.expect and ended >= args.expect:
            drained_at = time.time()
            print(f"drained {drained_at}", flush=True)
        if not done and not counts.get("events.events"):
            stop.wait(0.05)
    meter.__exit__(None, None, None)
    return {
        **meter.result(),
        "busy_seconds": busy,
        "queries": counter.count,
        "runs_ended": ended,
        "ticks": ticks,
        "query_seconds": counter.top(),
    }


def stage_timers(args) -> dict:
    """S3 worker. The coordinator (bench/run.py) sends "go <unix time>": the
    worker moves its clock there (time_machine, ticking at real speed from
    there) and sweeps as the periodic task does (tick(deliver=False)), then
    answers "done <unix time now> <runs>". Idle time between sweeps is skipped
    by the jump, so an hour of timers costs only the time spent sweeping.

    Lateness of a run = the moment its batch is written (just before the
    commit) minus its due_at, both on the travelled clock."""
    from datetime import UTC, datetime

    import time_machine

    import flows.engine.move as engine
    from flows.engine.tick import tick

    counter = QueryCounter().install()
    claimed_due: dict[int, float] = {}
    lateness_file = open(args.lateness, "wb")  # noqa: SIM115 - closed below
    original_claim = engine.claim_due_runs
    original_write = engine.write_batch

    # Observe, never change: the wrappers call the engine's own functions.
    def claim(*, ctx, limit, **options):
        runs = original_claim(ctx=ctx, limit=limit, **options)
        for run in runs:
            claimed_due[run.id] = run.due_at.timestamp()
        return runs

    def write(runs, result):
        original_write(runs, result)
        now = time.time()
        values = array("d", (now - claimed_due.pop(run.id) for run in runs if run.id in claimed_due))
        values.tofile(lateness_file)

    engine.claim_due_runs = claim
    engine.write_batch = write
    processed = 0
    busy = 0.0
    sweeps = 0
    meter = Meter()
    with time_machine.travel(datetime.fromtimestamp(0, UTC), tick=True) as traveller, meter:
        print("ready", flush=True)
        for line in sys.stdin:
            command, *rest = line.split()
            if command == "stop":
                break
            traveller.move_to(datetime.fromtimestamp(float(rest[0]), UTC))
            started = time.perf_counter()
            counts = tick(deliver=False)
            busy += time.perf_counter() - started
            sweeps += 1
            runs = counts.get("runs.runs", 0)
            processed += runs
            print(f"done {time.time()} {runs}", flush=True)
    lateness_file.close()
    return {
        **meter.result(),
        "busy_seconds": busy,
        "queries": counter.count,
        "runs": processed,
        "sweeps": sweeps,
        "peak_rss_mb": vm_hwm_mb(),
    }


STAGES = {"tick": stage_tick, "deliver": stage_deliver, "sweeper": stage_sweeper, "timers": stage_timers}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--at", help="ISO moment the clock travels to")
    parser.add_argument("--max", type=int, default=10**12, help="deliver: at most this many messages")
    parser.add_argument("--expect", type=int, default=0, help="sweeper: runs that end the batch phase")
    parser.add_argument("--lateness", help="timers: file for the lateness values (float64)")
    parser.add_argument("--follow-flow", type=int, help="tick: one of several workers on this flow's runs")
    parser.add_argument("--out", help="JSON result file (default: stdout)")
    args = parser.parse_args()
    setup_django()
    write_result(args.out, STAGES[args.stage](args))


if __name__ == "__main__":
    main()
