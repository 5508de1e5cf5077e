"""S4 — latency, event to inbox (issue 13): `manage.py qcluster` with the
default settings, `runserver`, a real SMTP server (aiosmtpd) on loopback
(bench/realtime.py). N `order_created` events go one by one through
POST /api/v1/events, each for its own customer; the latency of each is the
time from the API's answer to the SMTP server's receipt of its email.
Once with django-q2's ORM broker, once with Redis.

    .venv/bin/python bench/s4_latency.py                 # n = 200, both brokers
    .venv/bin/python bench/s4_latency.py --n 50 --brokers orm --no-results

Each broker gets a fresh PostgreSQL database next to --database-url's
(dropped after). The events are paced (--interval, default 0.2 s): an idle
system answering independent events. With --backlog M, M marketing emails
(to M subscribed customers) are queued in one transaction just before the
events, so the service emails meet a marketing drain in progress — the
priority lane's case (issue 13: service p99 <= 5 s). Appends the figures,
with the machine's load, to bench/RESULTS.md unless --no-results.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import percentile
from bench.realtime import Sink, Stack

ROOT = Path(__file__).resolve().parents[1]
TARGET_P50, TARGET_P99 = 1.0, 3.0
OLD = "p50 20–51 s, p99 25 s+ (ORM broker and Redis alike; issue 13, before the wake-ups)"
TARGET_BACKLOG_P99 = 5.0
# M subscribed customers and one queued marketing email each, in one
# transaction (its commit wakes delivery, as the engine's would).
BACKLOG = """
from django.db import connection, transaction
from channels.models import Template
from channels.outbox import SendRequest, queue_messages
from customers.models import Customer
count = int({count})
Template.objects.create(slug="bench-promo", name="Promo", channel="email", purpose="marketing",
    subject="Our sale", text="Hello {{{{ customer.first_name }}}}, the sale is on.")
with connection.cursor() as cursor:
    cursor.execute(
        "INSERT INTO customers_customer (external_id, email, email_valid, phone, first_name, last_name, "
        "timezone, fields, push_tokens, created_at, updated_at) SELECT 'b' || i, 'b' || i || '@example.com', "
        "true, '', 'Bo', 'Backlog', '', '{{}}'::jsonb, '{{}}'::jsonb, now(), now() FROM generate_series(1, %s) i",
        [count])
    cursor.execute(
        "INSERT INTO customers_subscription (customer_id, channel, status, updated_at) "
        "SELECT id, 'email', 'subscribed', now() FROM customers_customer WHERE external_id LIKE 'b%%'")
ids = list(Customer.objects.filter(external_id__startswith="b").values_list("id", flat=True))
with transaction.atomic():
    for start in range(0, len(ids), 5000):
        queue_messages(requests=[
            SendRequest(customer_id=c, template_slug="bench-promo", channel="email", run_id=10_000_000 + c,
                        node_key="backlog", step_index=0, pass_no=1)
            for c in ids[start:start + 5000]])
"""


def measure(
    *, broker: str, n: int, interval: float, database_url: str, redis_url: str, backlog: int = 0
) -> dict:
    with (
        Sink() as sink,
        Stack(
            sink=sink,
            database_url=database_url,
            redis_url=redis_url if broker == "redis" else "",
            customers=n + 1,
        ) as stack,
    ):
        # One event first, not counted: the cluster is up and its first
        # wake-ups are done (what a running deployment looks like).
        stack.post_event(f"c{n}", "warm-up")
        if not sink.wait_for({f"c{n}@example.com"}, 120):
            raise RuntimeError("the warm-up email never arrived:\n" + stack.log_text())
        if backlog:
            stack.manage("shell", "-c", BACKLOG.format(count=backlog))
        load_start = os.getloadavg()
        answers: dict[str, float] = {}
        for i in range(n):
            answers[f"c{i}@example.com"] = stack.post_event(f"c{i}", f"order-{i}", order=i)
            time.sleep(interval)
        arrived = sink.wait_for(set(answers), 120)
        load_end = os.getloadavg()
        backlog_received = (
            sum(1 for rcpt in list(sink.recorder.arrivals) if rcpt.startswith("b")) if backlog else 0
        )
    latencies = sorted(arrived[rcpt] - answered for rcpt, answered in answers.items() if rcpt in arrived)
    return {
        "broker": broker,
        "n": n,
        "backlog": backlog,
        "backlog_received": backlog_received,
        "arrived": len(latencies),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else None,
        "min": latencies[0] if latencies else None,
        "load_start": load_start,
        "load_end": load_end,
    }


def _backlog(result: dict) -> str:
    if not result["backlog"]:
        return "none"
    return f"{result['backlog']:,} ({result['backlog_received']:,})"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def report(results: list[dict], *, interval: float, database_url: str) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    server = database_url.split("?", 1)[0].rsplit("/", 1)[0] + "/postgres"  # always exists
    pg = subprocess.run(["psql", server, "-tAc", "SHOW server_version"], capture_output=True, text=True)
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: S4 latency, event to inbox (bench/s4_latency.py)",
        "",
        f"- commit {commit.stdout.strip() or '?'}; `qcluster` with the default settings (2 workers), "
        f"`runserver`, aiosmtpd on 127.0.0.1; events paced {interval} s apart",
        f"- {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), PostgreSQL "
        f"{pg.stdout.strip() or '?'} on the same machine, Python {platform.python_version()}",
        "",
        "| broker | marketing backlog (delivered meanwhile) | events | arrived | p50 | p99 | max "
        "| load (1/5/15 min) at start → end |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        load = (
            f"{' '.join(f'{x:.2f}' for x in r['load_start'])} → {' '.join(f'{x:.2f}' for x in r['load_end'])}"
        )
        lines.append(
            f"| {r['broker']} | {_backlog(r)} | {r['n']} | {r['arrived']} | {_seconds(r['p50'])} | {_seconds(r['p99'])} "
            f"| {_seconds(r['max'])} | {load} |"
        )
    lines += ["", f"Before (issue 13): {OLD}.", "", "Targets:", ""]
    for r in results:
        limits = (("p99", r["p99"], TARGET_BACKLOG_P99),) if r["backlog"] else ()
        limits = limits or (("p50", r["p50"], TARGET_P50), ("p99", r["p99"], TARGET_P99))
        for name, value, limit in limits:
            met = value is not None and value <= limit and r["arrived"] == r["n"]
            lines.append(
                f"- {'met' if met else 'MISSED'}: {r['broker']}{' under the backlog' if r['backlog'] else ''} "
                f"{name} ≤ {limit:g} s ({_seconds(value)})"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--brokers", default="orm,redis")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/maestra_bench"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument(
        "--backlog", type=int, default=0, help="marketing emails queued just before the events"
    )
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    results = []
    for broker in [b.strip() for b in args.brokers.split(",") if b.strip()]:
        print(f"==> S4 with the {broker} broker, n = {args.n}", flush=True)
        results.append(
            measure(
                broker=broker,
                n=args.n,
                interval=args.interval,
                database_url=args.database_url,
                redis_url=args.redis_url,
                backlog=args.backlog,
            )
        )
    text = report(results, interval=args.interval, database_url=args.database_url)
    print(text)
    if not args.no_results:
        with (ROOT / "bench" / "RESULTS.md").open("a") as out:
            out.write("\n" + text)
    return 0 if all(r["arrived"] == r["n"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
