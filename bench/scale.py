"""Runs in flight at scale: table and index sizes, and the engine's claim time,
with 1,000,000 and then 10,000,000 runs waiting (docs/scaling.md quotes it).

    .venv/bin/python bench/scale.py                     # 1,000,000 customers x 10 flows
    .venv/bin/python bench/scale.py --customers 100000  # a quick look (1,000,000 runs)

It DROPS and creates its own database (default `maestra_scale`, never the
developer's), migrates it, makes the customers with set-based SQL, launches
`--flows` flows (event start -> wait) through flows.lifecycle, and writes one
waiting run per customer and flow with INSERT ... SELECT (the engine would
write them the same way, one statement per batch). Due times are spread
evenly over 7 days from a moment in the future, so nothing in real time
touches them.

Claims are measured with the engine's own function
(flows.engine.move.claim_due_runs, SELECT ... FOR UPDATE SKIP LOCKED on the
partial index run_due_id_idx) in a transaction that is rolled back, at three
clocks: when one batch is due, when a seventh of all runs is due, and when
every run is due. Each figure is the median of --repeat claims. Nothing here
is a test; no test asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START = datetime(2032, 6, 7, 0, 0, tzinfo=UTC)  # the first run is due then
SPREAD = timedelta(days=7)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/maestra_scale")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--flows", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2000, help="runs per claim (MAESTRA_BATCH_SIZE)")
    parser.add_argument("--repeat", type=int, default=7)
    return parser.parse_args()


def create_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    if not name.startswith("maestra_scale"):
        raise SystemExit(f"refusing to drop {name!r}: the database name must start with maestra_scale")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=os.environ,
        check=True,
    )


def execute(statement: str, params=None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def scalar(statement: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()[0]


def make_customers(n: int) -> None:
    execute(
        "INSERT INTO customers_customer (external_id, email, email_valid, phone, first_name, last_name, "
        "timezone, fields, push_tokens, created_at, updated_at) "
        "SELECT 'c' || i, 'c' || i || '@example.com', true, '', 'Ann', 'Scale', '', '{}'::jsonb, "
        "'{}'::jsonb, now(), now() FROM generate_series(1, %s) i",
        [n],
    )


def launch_flow(number: int) -> tuple[int, int]:
    from flows import lifecycle

    flow = lifecycle.create_flow(
        document={
            "format": "maestra.flow/1",
            "name": f"Scale {number}",
            "timezone": "UTC",
            "nodes": [
                {"key": "start", "kind": "event", "config": {"event_type": f"scale_{number}"}},
                {"key": "wait", "kind": "wait", "config": {"mode": "fixed", "duration": "P7D"}},
            ],
            "edges": [{"from": "start", "to": "wait"}],
        }
    )
    lifecycle.launch_flow(flow=flow, enqueue=False)
    flow = lifecycle.finish_launch(flow_id=flow.pk)
    return flow.pk, flow.live_version_id


def add_runs(flow_id: int, version_id: int, customers: int) -> float:
    """One waiting run per customer, due evenly over SPREAD from START."""
    started = time.perf_counter()
    execute(
        "INSERT INTO flows_run (flow_id, version_id, customer_id, trigger_event_id, is_test, status, "
        "node_key, due_at, clock, node_clock, node_entered_at, seq, launched, entered_at, ended_at, stop_reason) "
        "SELECT %(flow)s, %(version)s, c.id, NULL, false, 'waiting', 'wait', d.due, d.due - interval '7 days', "
        "d.due - interval '7 days', d.due - interval '7 days', 1, false, d.due - interval '7 days', NULL, '' "
        "FROM customers_customer c, LATERAL (SELECT %(start)s::timestamptz "
        "+ ((c.id * 7919 + %(flow)s) %% %(n)s) * (%(spread)s / %(n)s) * interval '1 second' AS due) d",
        {
            "flow": flow_id,
            "version": version_id,
            "n": customers,
            "start": START,
            "spread": SPREAD.total_seconds(),
        },
    )
    return time.perf_counter() - started


def sizes() -> list[tuple[str, int]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'flows_run (heap)', pg_relation_size('flows_run') UNION ALL "
            "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
            "WHERE relname = 'flows_run' UNION ALL "
            "SELECT 'flows_run (total)', pg_total_relation_size('flows_run')"
        )
        return cursor.fetchall()


def claim_ms(now: datetime, batch: int, repeat: int) -> tuple[float, int]:
    from django.db import transaction

    from flows.engine.batch import EngineContext
    from flows.engine.move import claim_due_runs

    times, got = [], 0
    for _ in range(repeat):
        ctx = EngineContext(now=now)
        ctx.movable_flow_ids()  # the flows and graphs are read once per tick, not per claim
        with transaction.atomic():
            started = time.perf_counter()
            got = len(claim_due_runs(ctx=ctx, limit=batch))
            times.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    return statistics.median(times), got


def explain(now: datetime, batch: int) -> str:
    from django.db import connection

    from flows.engine.batch import EngineContext
    from flows.models import Run

    ctx = EngineContext(now=now)
    qs = (
        Run.objects.filter(
            status__in=["active", "waiting"], due_at__lte=now, flow_id__in=ctx.movable_flow_ids()
        )
        .order_by("due_at", "id")
        .values_list("id")[:batch]
    )
    query, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {query} FOR UPDATE SKIP LOCKED", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def mb(value: int) -> str:
    return f"{value / 1024 / 1024:,.0f} MB"


def report_point(label: str, runs: int, args) -> list[str]:
    execute("VACUUM ANALYZE flows_run")
    lines = [f"### {runs:,} runs in flight ({label})", "", "| relation | size |", "|---|---|"]
    lines += [f"| {name} | {mb(size)} |" for name, size in sizes()]
    lines += [
        "",
        f"| claim of {args.batch:,} (median of {args.repeat}) | due runs | ms | claimed |",
        "|---|---|---|---|",
    ]
    first_batch = START + SPREAD * (args.batch / runs)
    for what, now in (
        ("one batch due", first_batch),
        ("a seventh due", START + SPREAD / 7),
        ("every run due", START + SPREAD * 2),
    ):
        due = scalar(
            "SELECT count(*) FROM flows_run WHERE status IN ('active', 'waiting') AND due_at <= %s", [now]
        )
        ms, got = claim_ms(now, args.batch, args.repeat)
        lines.append(f"| {what} | {due:,} | {ms:,.1f} | {got:,} |")
    lines += [
        "",
        "Plan of the claim with every run due:",
        "",
        "```",
        explain(START + SPREAD * 2, args.batch),
        "```",
        "",
    ]
    return lines


def main() -> int:
    args = parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maestra.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ["MAESTRA_WAKE"] = "0"  # nothing should react to these rows
    load_start = os.getloadavg()
    print(f"==> database {args.database_url} (dropped and created)", flush=True)
    create_database(args.database_url)
    import django

    django.setup()
    started = time.perf_counter()
    make_customers(args.customers)
    print(f"==> {args.customers:,} customers in {time.perf_counter() - started:.1f} s", flush=True)
    flows = [launch_flow(number) for number in range(1, args.flows + 1)]
    out = [
        f"## Runs in flight at scale — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`bench/scale.py --customers {args.customers} --flows {args.flows} --batch {args.batch}`; "
        f"{os.cpu_count()} CPUs, PostgreSQL {scalar('SHOW server_version')}, "
        f"load average at start {load_start[0]:.2f}.",
        "",
    ]
    inserted = 0
    for index, (flow_id, version_id) in enumerate(flows, start=1):
        seconds = add_runs(flow_id, version_id, args.customers)
        inserted += args.customers
        print(
            f"==> flow {index}: {args.customers:,} runs written in {seconds:.1f} s ({inserted:,} in flight)",
            flush=True,
        )
        if index == 1 and args.flows > 1:
            out += report_point("one flow", inserted, args)
            print("\n".join(out[-30:]), flush=True)
    out += report_point(f"{args.flows} flows", inserted, args)
    out.append(f"Load average at the end {os.getloadavg()[0]:.2f}.")
    text = "\n".join(out) + "\n"
    print(text)
    target = ROOT / "bench" / "out"
    target.mkdir(exist_ok=True)
    (target / f"scale-{datetime.now(UTC):%Y%m%d-%H%M}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
