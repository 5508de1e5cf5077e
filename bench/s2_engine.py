"""S2's engine path on its own: the events of a finished S2 run matched and
moved again, in one process, with its CPU seconds, its PostgreSQL backend's
CPU seconds and its queries per 1,000 events (optionally under cProfile).

    python bench/s2_engine.py --database-url postgres://…/maestra_s2h [--chunk 500] [--profile FILE]

The database is one `bench/run.py --only s2` left behind (copy it first:
`CREATE DATABASE maestra_s2h TEMPLATE maestra_s2bench`): each run deletes
its runs, messages, passes, stats and launch records, marks its events
unprocessed again (and VACUUM ANALYZEs), then ticks — `tick(deliver=False)`,
what S2's workers do — until every event's message is queued. `--chunk K`
releases the events K at a time (a tick per chunk), as a stream arriving at
the workers does; without it the whole backlog is there at once.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Meter, QueryCounter, setup_django

WARM = 200

RESET = [
    "DELETE FROM channels_message",
    "DELETE FROM flows_nodepass",
    "DELETE FROM flows_run",
    "DELETE FROM flows_nodestat",
    "DELETE FROM flows_launchrecord",
    "UPDATE customers_event SET processed_at = now() WHERE processed_at IS NULL",
]


def reset(cursor) -> list[int]:
    """Empty what the engine wrote; every bench_order event processed (held
    back), its id returned in order."""
    for statement in RESET:
        cursor.execute(statement)
    cursor.execute("SELECT id FROM customers_event WHERE type = 'bench_order' ORDER BY id")
    return [row[0] for row in cursor.fetchall()]


def release(ids: list[int], url: str) -> None:
    """Mark `ids` unprocessed from a connection of its own: its backend's CPU
    is not the engine's."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE customers_event SET processed_at = NULL WHERE id = ANY(%s)", [ids])


def drain() -> int:
    from flows.engine.tick import tick

    ticks = 0
    while True:
        counts = tick(deliver=False)
        ticks += 1
        if not counts.get("events.events") and not counts.get("runs.runs"):
            return ticks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--chunk", type=int, default=0, help="release the events this many at a time")
    parser.add_argument("--limit", type=int, default=0, help="only the first N events")
    parser.add_argument("--profile", help="write cProfile stats here and print the top functions")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    # The delivery wake queues a django-q2 task through the ORM broker, which
    # closes a connection whose CONN_MAX_AGE is 0: keep the backend measured.
    os.environ.setdefault("DB_CONN_MAX_AGE", "600")
    setup_django()
    from django.db import connection

    with connection.cursor() as cursor:
        ids = reset(cursor)
        for table in (
            "customers_event",
            "flows_run",
            "channels_message",
            "flows_nodepass",
            "flows_launchrecord",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
    # Warm up on the first WARM events (imports, graphs, templates, the
    # backend's caches); the rest are measured.
    release(ids[:WARM], args.database_url)
    drain()
    ids = ids[WARM:]
    if args.limit:
        ids = ids[: args.limit]
    chunks = [ids[i : i + args.chunk] for i in range(0, len(ids), args.chunk)] if args.chunk else [ids]
    counter = QueryCounter().install()
    profiler = cProfile.Profile() if args.profile else None
    released = 0.0
    ticks = 0
    with Meter() as meter:
        for chunk in chunks:
            # Not the engine's work: taken out of the figures below.
            started, queries = time.process_time(), counter.count
            release(chunk, args.database_url)
            released += time.process_time() - started
            counter.count = queries
            if profiler:
                profiler.enable()
            ticks += drain()
            if profiler:
                profiler.disable()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM channels_message WHERE node_key = 'thanks'")
        messages = cursor.fetchone()[0]
    n = len(ids)
    cpu = meter.cpu_seconds - released
    db = meter.db_cpu_seconds or 0.0
    print(
        f"events {n:,} messages {messages:,} chunk {args.chunk or 'all'} ticks {ticks}: "
        f"wall {meter.seconds:.2f} s, CPU {cpu:.2f} s + DB {db:.2f} s = "
        f"{(cpu + db) / n * 1000:.3f} CPU s per 1,000 events "
        f"({cpu / n * 1000:.3f} engine + {db / n * 1000:.3f} DB); "
        f"queries {counter.count:,} ({counter.count / n:.3f} per event)"
    )
    for key, seconds in counter.top(15).items():
        print(f"  {seconds:7.3f} s  {key}")
    if profiler:
        profiler.dump_stats(args.profile)
        stats = pstats.Stats(args.profile)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
