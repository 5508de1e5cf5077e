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
system answering independent events, not a backlog. Appends the figures,
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


def measure(*, broker: str, n: int, interval: float, database_url: str, redis_url: str) -> dict:
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
        load_start = os.getloadavg()
        answers: dict[str, float] = {}
        for i in range(n):
            answers[f"c{i}@example.com"] = stack.post_event(f"c{i}", f"order-{i}", order=i)
            time.sleep(interval)
        arrived = sink.wait_for(set(answers), 120)
        load_end = os.getloadavg()
    latencies = sorted(arrived[rcpt] - answered for rcpt, answered in answers.items() if rcpt in arrived)
    return {
        "broker": broker,
        "n": n,
        "arrived": len(latencies),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else None,
        "min": latencies[0] if latencies else None,
        "load_start": load_start,
        "load_end": load_end,
    }


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def report(results: list[dict], *, interval: float, database_url: str) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    pg = subprocess.run(["psql", database_url, "-tAc", "SHOW server_version"], capture_output=True, text=True)
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: S4 latency, event to inbox (bench/s4_latency.py)",
        "",
        f"- commit {commit.stdout.strip() or '?'}; `qcluster` with the default settings (2 workers), "
        f"`runserver`, aiosmtpd on 127.0.0.1; events paced {interval} s apart",
        f"- {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), PostgreSQL "
        f"{pg.stdout.strip() or '?'} on the same machine, Python {platform.python_version()}",
        "",
        "| broker | events | arrived | p50 | p99 | max | load (1/5/15 min) at start → end |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        load = (
            f"{' '.join(f'{x:.2f}' for x in r['load_start'])} → {' '.join(f'{x:.2f}' for x in r['load_end'])}"
        )
        lines.append(
            f"| {r['broker']} | {r['n']} | {r['arrived']} | {_seconds(r['p50'])} | {_seconds(r['p99'])} "
            f"| {_seconds(r['max'])} | {load} |"
        )
    lines += ["", f"Before (issue 13): {OLD}.", "", "Targets:", ""]
    for r in results:
        for name, value, limit in (("p50", r["p50"], TARGET_P50), ("p99", r["p99"], TARGET_P99)):
            met = value is not None and value <= limit and r["arrived"] == r["n"]
            lines.append(
                f"- {'met' if met else 'MISSED'}: {r['broker']} {name} ≤ {limit:g} s ({_seconds(value)})"
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
