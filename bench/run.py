"""The benchmark harness (see bench/README.md). Run it through scripts/bench.sh.

This process only prepares data and coordinates: every measured stage runs in
a child process of its own (bench/stage.py, floor.py, naive.py, gunicorn,
s2_client.py, smtp_sink.py), whose peak RSS and query count are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import time
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    PYTHON,
    ROOT,
    S1_FIRE_HOUR,
    S1_WEEK0_LAUNCH,
    S3_START,
    Child,
    children_of,
    iso,
    percentile,
    run_child,
    setup_django,
)

RESULTS = BENCH / "RESULTS.md"
AUDIENCE_TEMPLATES = {
    "bench-hello": ("Hello {{ customer.first_name }}", "this week's news"),
    "bench-offer": ("An offer for you, {{ customer.first_name }}", "a gold offer"),
    "bench-order": ("Thanks for order {{ event.order_id }}, {{ customer.first_name }}", "your order"),
}


# --- Small helpers -------------------------------------------------------------------------


class Lines:
    """Line reader over a child's stdout pipe with a deadline (no hang if it dies)."""

    def __init__(self, child: Child):
        self.child = child
        self.buffer = b""

    def next(self, timeout: float = 3600) -> str:
        deadline = time.monotonic() + timeout
        stream = self.child.proc.stdout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.child.name}: no line within {timeout} s")
            ready, _, _ = select.select([stream], [], [], min(left, 5))
            if ready:
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"{self.child.name} closed its output (exit {self.child.proc.poll()})")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def expect(self, prefix: str, timeout: float = 3600) -> str:
        while True:
            line = self.next(timeout)
            if line.startswith(prefix):
                return line


S1_GOAL_AND_EXIT = {
    "goal": {"event_type": "order_created", "filter": None, "window": "P7D", "value_field": "event.total"},
    "exit": {"event_type": "unsubscribed", "filter": {"field": "event.list", "op": "eq", "value": "all"}},
}


def send(child: Child, text: str) -> None:
    child.proc.stdin.write(f"{text}\n".encode())
    child.proc.stdin.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sql(statement: str, params=None) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def scalar(statement: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()[0]


def vacuum(*tables: str) -> None:
    for table in tables:
        sql(f"VACUUM ANALYZE {table}")


def fmt_int(value) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def cpu_total(result: dict) -> float:
    return (result.get("cpu_seconds") or 0) + (result.get("db_cpu_seconds") or 0)


def cpu_text(result: dict) -> str:
    """CPU seconds of the process + of its PostgreSQL backend."""
    if result.get("cpu_seconds") is None:
        return ""
    db = result.get("db_cpu_seconds")
    return f"{result['cpu_seconds']:.1f} + {db:.1f}" if db is not None else f"{result['cpu_seconds']:.1f} + ?"


def fmt_mb(value) -> str:
    return f"{value:.0f}" if isinstance(value, int | float) else "?"


class AutovacuumStandIn:
    """When the server runs with autovacuum off (as this machine's does), a
    production-like measurement still needs what autovacuum would do: ANALYZE
    a table once 10% of it changed and VACUUM it once 20% of it is dead (the
    default thresholds), checked every 30 s. Without it, a runs table analysed
    while empty keeps its planner estimates through a million-row stage."""

    def __init__(self, database_url: str, log):
        import threading

        self.url = database_url
        self.log = log
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.done: list[str] = []

    def start(self) -> AutovacuumStandIn:
        self.thread.start()
        return self

    def loop(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(30):
                rows = conn.execute(
                    "SELECT s.relname, c.reltuples, s.n_mod_since_analyze, s.n_dead_tup "
                    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
                ).fetchall()
                for table, tuples, modified, dead in rows:
                    tuples = max(tuples, 0)
                    if dead > 50 + 0.2 * tuples:
                        conn.execute(f'VACUUM ANALYZE "{table}"')
                        self.done.append(f"vacuum analyze {table}")
                    elif modified > 50 + 0.1 * tuples:
                        conn.execute(f'ANALYZE "{table}"')
                        self.done.append(f"analyze {table}")


class Bench:
    def __init__(self, args):
        self.args = args
        self.stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.out = BENCH / "out" / self.stamp
        self.out.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.facts: dict = {}
        self.ratios: list[str] = []
        self.targets: list[tuple[str, bool | None, str]] = []
        self.notes: list[str] = []
        self.env = dict(os.environ)
        self.env.update(
            {
                "DATABASE_URL": args.database_url,
                "DJANGO_SETTINGS_MODULE": "maestra.settings",
                "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key"),
                # DEBUG off: with DEBUG on Django keeps every query in memory.
                "DEBUG": "false",
                # Persistent connections, as in production, and so that each
                # stage's backend CPU is measured: with CONN_MAX_AGE 0 the
                # delivery wake-up (a django-q2 task queued through the ORM
                # broker) closes the connection, and the backend's CPU was lost
                # with it (S1's column showed "+ 0.0").
                "DB_CONN_MAX_AGE": "600",
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
        )
        os.environ.update(self.env)

    # --- bookkeeping ---

    def log(self, message: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)

    def row(self, scenario, n, seconds, rate=None, unit="", rss="", queries="", note="", cpu=None) -> dict:
        if isinstance(cpu, dict):
            cpu = cpu_text(cpu)
        row = {
            "cpu": cpu or "",
            "scenario": scenario,
            "n": n,
            "seconds": seconds,
            "rate": rate if rate is not None else (n / seconds if seconds else None),
            "unit": unit,
            "rss": rss,
            "queries": queries,
            "note": note,
        }
        self.rows.append(row)
        self.log(
            f"{scenario}: n={fmt_int(n)} {seconds:.2f}s {fmt_int(row['rate'])} {unit} rss={rss} q={queries} {note}"
        )
        return row

    def target(self, text: str, ok: bool | None, detail: str) -> None:
        self.targets.append((text, ok, detail))

    def start_child(self, name: str, args: list[str], env: dict | None = None, **popen) -> Child:
        """A process left running, logging to <name>.log (`popen`: its pipes)."""
        return Child.start(args, name=name, env=env or self.env, log=self.out / f"{name}.log", **popen)

    def child(self, name: str, args: list[str], env: dict | None = None) -> tuple[Child, dict]:
        out = self.out / f"{name}.json"
        if self.args.profile:
            # Sampled by py-spy (collapsed stacks in <name>.pyspy; bench/profile_summary.py reads them).
            args = [
                str(ROOT / ".venv/bin/py-spy"),
                "record",
                "-r",
                "100",
                "-f",
                "raw",
                "-o",
                str(self.out / f"{name}.pyspy"),
                "--",
                *args,
            ]
        child = run_child(
            [*args, "--out", str(out)], name=name, env=env or self.env, log=self.out / f"{name}.log"
        )
        result = json.loads(out.read_text())
        return child, result

    # --- set-up ---

    def create_database(self) -> None:
        import psycopg

        url = self.args.database_url
        base, name = url.rsplit("/", 1)
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        run_child(
            [PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"],
            name="migrate",
            env=self.env,
            log=self.out / "migrate.log",
        )

    def machine_facts(self) -> None:
        def git(*cmd):
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()

        model = ""
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        self.facts = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git("rev-parse", "--short", "HEAD")
            + (" (+ uncommitted changes in the tree)" if dirty else ""),
            "cpus": os.cpu_count(),
            "cpu_model": model,
            "postgres": scalar("SHOW server_version"),
            "python": platform.python_version(),
            "load_start": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
        }

    def generate_customers(self, n: int) -> float:
        """n customers, an email subscription each, half of them 'gold': set-based SQL only."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        sql(
            "INSERT INTO customers_customer (external_id, email, email_valid, phone, first_name, last_name, "
            "timezone, fields, push_tokens, created_at, updated_at) "
            "SELECT 'c' || i, 'c' || i || '@example.com', true, '', 'Ann' || i, 'Bench', '', "
            "jsonb_build_object('tier', CASE WHEN i %% 2 = 0 THEN 'gold' ELSE 'silver' END), '{}'::jsonb, "
            "%s, %s FROM generate_series(1, %s) i",
            [now, now, n],
        )
        sql(
            "INSERT INTO customers_subscription (customer_id, channel, status, updated_at) "
            "SELECT id, 'email', 'subscribed', %s FROM customers_customer",
            [now],
        )
        vacuum("customers_customer", "customers_subscription")
        return time.perf_counter() - started

    def make_segment(self, slug: str, n: int) -> int:
        from customers.models import Segment

        segment = Segment.objects.create(slug=slug, name=slug, kind=Segment.Kind.STATIC)
        sql(
            "INSERT INTO customers_segmentmembership (segment_id, customer_id, added_at) "
            "SELECT %s, id, now() FROM (SELECT id FROM customers_customer ORDER BY id LIMIT %s) c",
            [segment.pk, n],
        )
        vacuum("customers_segmentmembership")
        return segment.pk

    def make_templates(self) -> None:
        from channels.models import Template

        for slug, (subject, what) in AUDIENCE_TEMPLATES.items():
            Template.objects.create(
                slug=slug,
                name=slug,
                channel="email",
                purpose=Template.Purpose.MARKETING,
                subject=subject,
                text=f"Hi {{{{ customer.first_name }}}}, {what} for {{{{ customer.email }}}}.",
                html=f"<p>Hi {{{{ customer.first_name }}}}, {what} for {{{{ customer.email }}}}.</p>",
            )

    def launch(self, document: dict, *, at: datetime | None = None):
        import time_machine

        from flows import lifecycle

        def go():
            flow = lifecycle.create_flow(document=document)
            if flow.status != "ready":
                raise RuntimeError(f"bench flow {document['name']!r} is invalid: {flow.draft.errors}")
            lifecycle.launch_flow(flow=flow, enqueue=False)
            return lifecycle.finish_launch(flow_id=flow.pk)

        if at is None:
            return go()
        with time_machine.travel(at, tick=False):
            return go()

    # --- S1 ---

    @staticmethod
    def s1_document(name: str, segment_slug: str) -> dict:
        send = lambda slug: {"action": "send", "channel": "email", "template": slug}  # noqa: E731
        return {
            "format": "maestra.flow/1",
            "name": name,
            "timezone": "UTC",
            "launch_limit": {"mode": "periodic", "period": "P7D", "max_total": None},
            "schedule": {"start_at": None, "end_at": None},
            "nodes": [
                {
                    "key": "start",
                    "kind": "schedule",
                    "config": {
                        "recurrence": {"every": "week", "weekdays": ["mon"], "at": f"{S1_FIRE_HOUR:02d}:00"},
                        "timezone": "flow",
                        "audience": {"segment": segment_slug, "rule": None},
                    },
                },
                {
                    "key": "hello",
                    "kind": "steps",
                    "config": {"relevance": "P1D", "steps": [send("bench-hello")]},
                },
                {"key": "day", "kind": "wait", "config": {"mode": "fixed", "duration": "P1D"}},
                {
                    "key": "gold",
                    "kind": "condition",
                    "config": {"rule": {"field": "customer.fields.tier", "op": "eq", "value": "gold"}},
                },
                {
                    "key": "offer",
                    "kind": "steps",
                    "config": {"relevance": "P1D", "steps": [send("bench-offer")]},
                },
            ],
            "edges": [
                {"from": "start", "to": "hello"},
                {"from": "hello", "to": "day"},
                {"from": "day", "to": "gold"},
                {"from": "gold", "port": "yes", "to": "offer"},
            ],
            # BENCH_S1_GOAL=1: the same flow with a goal and exit criteria
            # (SPEC §13), to measure what the exit check costs each wake.
            **(S1_GOAL_AND_EXIT if os.environ.get("BENCH_S1_GOAL") == "1" else {}),
        }

    def reset_flow_tables(self) -> None:
        sql("TRUNCATE flows_run, flows_nodepass, flows_launchrecord, channels_message CASCADE")

    def run_s1(self, n: int, *, week: int, full: bool) -> None:
        from flows import lifecycle
        from flows.models import Flow, FlowVersion

        label = f"S1@{n:,}" if not full else "S1"
        if os.environ.get("BENCH_S1_GOAL") == "1":
            label += " goal+exit"
        slug = f"bench-s1-{week}"
        segment_id = self.make_segment(slug, n)
        launch_at = S1_WEEK0_LAUNCH + timedelta(days=7 * week)
        fire_at = launch_at.replace(hour=S1_FIRE_HOUR)
        flow = self.launch(self.s1_document(f"Bench S1 week {week}", slug), at=launch_at)
        version = FlowVersion.objects.get(pk=flow.live_version_id)
        assert version.next_fire_at == fire_at, (version.next_fire_at, fire_at)
        stage2_at = fire_at + timedelta(days=1, hours=1)
        deliver_at = fire_at + timedelta(days=2)
        floor = naive = None
        if full:
            floor = self.s1_floor(n, segment_id, fire_at, stage2_at, slug)
            naive = self.s1_naive(slug, fire_at)
            vacuum("flows_run", "channels_message", "flows_nodepass", "flows_launchrecord")

        # With N ≥ 1,000,000 the RSS check at N/10 runs with one worker, so the
        # table shows one worker and several side by side.
        workers = self.args.s1_workers if full else 1
        base_label, label = label, label + f", {workers} worker{'s' if workers > 1 else ''}"

        # Stage 1: the schedule fires, the audience enters, the first email is queued.
        child, result = self.ticks(f"s1-{n}-stage1", fire_at, flow.pk, workers)
        counts = result["counts"]
        waiting = scalar(
            "SELECT count(*) FROM flows_run WHERE flow_id = %s AND status = 'waiting'", [flow.pk]
        )
        queued = scalar("SELECT count(*) FROM channels_message WHERE flow_id = %s", [flow.pk])
        if waiting != n or queued != n:
            raise RuntimeError(
                f"{label} stage 1: expected {n} waiting runs and messages, got {waiting}, {queued}"
            )
        stage1 = self.s1_stage_row(
            label,
            base_label,
            "stage 1",
            "entry + email",
            n,
            child,
            result,
            note=f"runs started {counts.get('schedules.runs_started', 0):,}",
        )
        if stage2_at <= fire_at + timedelta(days=1, seconds=result["seconds"]):
            raise RuntimeError("stage 1 took more than an hour: move stage2_at later")

        # Stage 2: a day later, the wait ends, the condition splits, gold gets an offer.
        child, result = self.ticks(f"s1-{n}-stage2", stage2_at, flow.pk, workers)
        completed = scalar(
            "SELECT count(*) FROM flows_run WHERE flow_id = %s AND status = 'completed'", [flow.pk]
        )
        offers = scalar(
            "SELECT count(*) FROM channels_message WHERE flow_id = %s AND node_key = 'offer'", [flow.pk]
        )
        if completed != n:
            raise RuntimeError(f"{label} stage 2: expected {n} completed runs, got {completed}")
        stage2 = self.s1_stage_row(
            label,
            base_label,
            "stage 2",
            "wake + condition + email",
            n,
            child,
            result,
            note=f"offers queued {offers:,}",
        )

        if full:
            self.s1_ratios(n, stage1, stage2, floor, naive)
            self.s1_delivery(flow.pk, deliver_at)
        lifecycle.archive_flow(flow=Flow.objects.get(pk=flow.pk))

    def s1_stage_row(self, label, base_label, stage, what, n, child, result, *, note) -> dict:
        """The table row of one S1 stage (with its CPU total, for the ratios)
        and its point on the memory chart."""
        row = self.row(
            f"{label} {stage} ({what})",
            n,
            result["seconds"],
            unit="customers/s",
            rss=child.rss_text,
            queries=fmt_int(result["queries"]),
            note=note,
            cpu=result,
        )
        row["cpu_total"] = cpu_total(result)
        self.rss_points.append((f"{base_label} {stage}", n, child.peak_rss_mb))
        return row

    def s1_floor(self, n, segment_id, fire_at, stage2_at, slug) -> dict:
        from flows import lifecycle
        from flows.models import FlowVersion

        # A flow that is never launched owns the floor's rows; they are deleted after.
        flow = lifecycle.create_flow(document=self.s1_document("Bench floor", slug))
        version_id = FlowVersion.objects.get(flow=flow).pk
        base = [PYTHON, "bench/floor.py"]
        child1, r1 = self.child(
            "s1-floor-stage1",
            [
                *base,
                "stage1",
                "--flow",
                str(flow.pk),
                "--version",
                str(version_id),
                "--segment",
                str(segment_id),
                "--at",
                iso(fire_at),
            ],
        )
        child2, r2 = self.child(
            "s1-floor-stage2", [*base, "stage2", "--flow", str(flow.pk), "--at", iso(stage2_at)]
        )
        if r1["counts"]["messages"] != n or r2["counts"]["updated"] != n:
            raise RuntimeError(f"floor wrote {r1['counts']} / {r2['counts']}, expected {n}")
        for stage, statements, child, result in ((1, 3, child1, r1), (2, 2, child2, r2)):
            self.row(
                f"S1 floor stage {stage} ({statements} SQL statements)",
                n,
                result["seconds"],
                unit="customers/s",
                rss=fmt_mb(child.peak_rss_mb),
                queries=fmt_int(result["queries"]),
                cpu=result,
            )
        sql("DELETE FROM channels_message WHERE flow_id = %s", [flow.pk])
        sql("DELETE FROM flows_run WHERE flow_id = %s", [flow.pk])
        return {
            "stage1": r1["seconds"],
            "stage2": r2["seconds"],
            "cpu1": cpu_total(r1),
            "cpu2": cpu_total(r2),
        }

    def s1_naive(self, slug, fire_at) -> dict:
        from flows import lifecycle
        from flows.models import FlowVersion, LaunchRecord, NodePass, Run

        flow = lifecycle.create_flow(document=self.s1_document("Bench naive", slug))
        version_id = FlowVersion.objects.get(flow=flow).pk
        child, result = self.child(
            "s1-naive",
            [
                PYTHON,
                "bench/naive.py",
                "--flow",
                str(flow.pk),
                "--version",
                str(version_id),
                "--segment",
                slug,
                "--sample",
                str(self.args.sample),
                "--at",
                iso(fire_at),
            ],
        )
        done = result["counts"]["customers"]
        if done != self.args.sample:
            raise RuntimeError(f"naive handled {done} customers, expected {self.args.sample}")
        self.row(
            "S1 naive stage 1 (ORM loop, SAMPLE)",
            done,
            result["seconds"],
            unit="customers/s",
            rss=fmt_mb(child.peak_rss_mb),
            queries=fmt_int(result["queries"]),
            note=f"{result['queries'] / done:.1f} queries/customer; rate extrapolated below",
            cpu=result,
        )
        NodePass.objects.filter(run__flow=flow).delete()
        Run.objects.filter(flow=flow).delete()
        LaunchRecord.objects.filter(flow=flow).delete()
        sql("DELETE FROM channels_message WHERE flow_id = %s", [flow.pk])
        return {"rate": done / result["seconds"], "cpu_per_customer": cpu_total(result) / done}

    def s1_ratios(self, n, stage1, stage2, floor, naive) -> None:
        naive_seconds = n / naive["rate"]
        self.row(
            "S1 naive stage 1 (EXTRAPOLATED to N)",
            n,
            naive_seconds,
            unit="customers/s",
            note=f"from the {self.args.sample:,}-customer sample, not measured at N",
        )
        r1 = stage1["seconds"] / floor["stage1"]
        r2 = stage2["seconds"] / floor["stage2"]
        naive_x = naive_seconds / stage1["seconds"]
        self.ratios += [
            f"S1 stage 1 engine/floor = {r1:.1f}x (engine {stage1['seconds']:.1f} s, floor {floor['stage1']:.1f} s)",
            f"S1 stage 2 engine/floor = {r2:.1f}x (engine {stage2['seconds']:.1f} s, floor {floor['stage2']:.1f} s)",
            f"S1 stage 1 naive/engine = {naive_x:.0f}x (naive extrapolated {naive_seconds:,.0f} s)",
            "in CPU seconds (process + its PostgreSQL backend), which a busy machine stretches far less: "
            f"stage 1 engine/floor {stage1['cpu_total'] / floor['cpu1']:.1f}x, "
            f"stage 2 engine/floor {stage2['cpu_total'] / floor['cpu2']:.1f}x, "
            f"naive/engine {naive['cpu_per_customer'] * n / stage1['cpu_total']:.0f}x",
        ]
        for name, row, ratio in (("stage 1", stage1, r1), ("stage 2", stage2, r2)):
            self.target(f"S1 {name} >= 20,000 customers/s", row["rate"] >= 20_000, f"{row['rate']:,.0f}/s")
            self.target(f"S1 {name} within 5x of the floor", ratio <= 5, f"{ratio:.1f}x")
        self.target("S1 stage 1 >= 50x faster than naive", naive_x >= 50, f"{naive_x:.0f}x")

    def s1_delivery(self, flow_id: int, at: datetime) -> None:
        total = scalar(
            "SELECT count(*) FROM channels_message WHERE flow_id = %s AND status = 'queued'", [flow_id]
        )
        for backend, cap in (("locmem", self.args.deliver_max), ("smtp", self.args.smtp_max)):
            env = dict(self.env)
            sink = None
            if backend == "locmem":
                env["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
            else:
                port = free_port()
                env.update(
                    EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                    EMAIL_HOST="127.0.0.1",
                    EMAIL_PORT=str(port),
                )
                sink = self.start_child(
                    "smtp-sink",
                    [
                        PYTHON,
                        "bench/smtp_sink.py",
                        "--port",
                        str(port),
                        "--out",
                        str(self.out / "smtp-sink.json"),
                    ],
                    stdout=subprocess.PIPE,
                )
                Lines(sink).expect("ready", timeout=60)
            child, result = self.child(
                f"s1-deliver-{backend}",
                [PYTHON, "bench/stage.py", "deliver", "--at", iso(at), "--max", str(cap)],
                env=env,
            )
            counts = result["counts"]
            note = f"{counts['sent']:,} sent of {total:,} queued"
            rss = fmt_mb(child.peak_rss_mb)
            if sink is not None:
                sink.proc.send_signal(signal.SIGTERM)
                sink.wait()
                received = json.loads((self.out / "smtp-sink.json").read_text())["messages"]
                note += f"; the SMTP server received {received:,}"
                rss += f" (SMTP server {fmt_mb(sink.peak_rss_mb)})"
            if counts["sent"] != min(cap, total) or counts["failed"] or counts["retried"]:
                raise RuntimeError(f"delivery through {backend}: {counts}, expected {min(cap, total)} sent")
            self.row(
                f"S1 delivery, {backend}",
                counts["sent"],
                result["seconds"],
                unit="messages/s",
                rss=rss,
                queries=fmt_int(result["queries"]),
                note=note,
                cpu=result,
            )
            # The same messages again for the next backend.
            sql(
                "UPDATE channels_message SET status = 'queued', attempts = 0, sent_at = NULL, provider_id = '', "
                "lease_until = NULL, claimed_by = '', reason = '', response_status = NULL WHERE flow_id = %s AND status <> 'queued'",
                [flow_id],
            )

    # --- S3 ---

    def run_s3(self, n: int) -> None:
        from flows.models import FlowVersion

        interval = self.args.sweep_seconds
        flow = self.launch(
            {
                "format": "maestra.flow/1",
                "name": "Bench S3 timers",
                "timezone": "UTC",
                "nodes": [
                    {"key": "start", "kind": "event", "config": {"event_type": "bench_timer"}},
                    {"key": "wait", "kind": "wait", "config": {"mode": "fixed", "duration": "PT1H"}},
                ],
                "edges": [{"from": "start", "to": "wait"}],
            }
        )
        version_id = FlowVersion.objects.get(pk=flow.live_version_id).pk
        results = {}
        for workers in (1, 2):
            self.reset_flow_tables()
            # n waiting runs, due evenly over one hour from S3_START (set directly in SQL).
            sql(
                "INSERT INTO flows_run (flow_id, version_id, customer_id, trigger_event_id, is_test, status, "
                "node_key, due_at, clock, node_clock, node_entered_at, seq, launched, entered_at, ended_at, "
                "stop_reason) "
                "SELECT %(flow)s, %(version)s, c.id, NULL, false, 'waiting', 'wait', d.due, d.due - interval '1 hour', "
                "d.due - interval '1 hour', d.due - interval '1 hour', 1, false, d.due - interval '1 hour', NULL, '' "
                "FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM customers_customer ORDER BY id "
                "LIMIT %(n)s) c, LATERAL (SELECT %(start)s::timestamptz + (c.rn - 1) * (3600.0 / %(n)s) "
                "* interval '1 second' AS due) d",
                {"flow": flow.pk, "version": version_id, "n": n, "start": S3_START},
            )
            vacuum("flows_run")
            results[workers] = self.s3_sweeps(n, workers, interval)
        one, two = results[1], results[2]
        self.ratios.append(f"S3 two workers / one worker throughput = {two['rate'] / one['rate']:.2f}x")
        self.target(
            "S3 two workers faster than one",
            two["rate"] > one["rate"],
            f"{one['rate']:,.0f}/s vs {two['rate']:,.0f}/s",
        )
        for workers, result in results.items():
            self.target(
                f"S3 lateness p99 <= sweep interval + 5 s ({workers} worker{'s' if workers > 1 else ''})",
                result["p99"] <= interval + 5,
                f"p99 {result['p99']:.1f} s (interval {interval} s)",
            )
            self.rss_points.append((f"S3 {workers} worker(s)", n, result["rss_max"]))

    def ticks(self, name: str, at: datetime, flow_id: int, workers: int) -> tuple[SimpleNamespace, dict]:
        """A stage of S1 done by `workers` engine processes side by side (as the
        workers of a qcluster share the sweep), started together. Returns the
        combined result: seconds from the first start to the last end, CPU and
        queries summed, each process's peak RSS."""
        children = []
        for index in range(workers):
            child_name = f"{name}-w{index}"
            args = [PYTHON, "bench/stage.py", "tick", "--at", iso(at), "--follow-flow", str(flow_id)]
            args += ["--out", str(self.out / f"{child_name}.json")]
            if self.args.profile:
                args = [str(ROOT / ".venv/bin/py-spy"), "record", "-r", "100", "-f", "raw", "-o",
                        str(self.out / f"{child_name}.pyspy"), "--", *args]  # fmt: skip
            env = self.env
            if self.args.hosts:
                # Scale-out: worker i runs "on" simulated host i mod H
                # (scripts/netns.sh), reaching PostgreSQL and Redis over its veth.
                host = index % self.args.hosts + 1
                args = ["ip", "netns", "exec", f"maestra-host{host}", *args]
                env = self.host_env(host)
            children.append(
                self.start_child(
                    child_name,
                    args,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        for child in children:
            Lines(child).expect("ready", timeout=300)
        for child in children:
            send(child, "go")
        results = []
        for child in children:
            if child.wait() != 0:
                tail = (self.out / f"{child.name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{child.name} failed:\n{tail}")
            results.append(json.loads((self.out / f"{child.name}.json").read_text()))
        counts: dict[str, int] = {}
        for result in results:
            for key, value in result["counts"].items():
                counts[key] = counts.get(key, 0) + value
        combined = {
            "seconds": max(r["ended_at"] for r in results) - min(r["started_at"] for r in results),
            "cpu_seconds": sum(r["cpu_seconds"] for r in results),
            "db_cpu_seconds": sum(r["db_cpu_seconds"] or 0 for r in results),
            "queries": sum(r["queries"] for r in results),
            "counts": counts,
            "workers": workers,
        }
        peak = max(child.peak_rss_mb for child in children)
        rss = " / ".join(fmt_mb(child.peak_rss_mb) for child in children)
        return SimpleNamespace(peak_rss_mb=peak, rss_text=rss), combined

    def host_env(self, host: int) -> dict:
        """The environment of a process on simulated host `host`: the same
        servers, addressed through that host's side of its veth pair."""
        env = dict(self.env)
        for name in ("DATABASE_URL", "REDIS_URL"):
            if env.get(name):
                env[name] = (
                    env[name].replace("127.0.0.1", f"10.77.{host}.1").replace("localhost", f"10.77.{host}.1")
                )
        return env

    def s3_sweeps(self, n: int, workers: int, interval: int) -> dict:
        children = []
        for index in range(workers):
            name = f"s3-{workers}w-{index}"
            children.append(
                self.start_child(
                    name,
                    [
                        PYTHON,
                        "bench/stage.py",
                        "timers",
                        "--out",
                        str(self.out / f"{name}.json"),
                        "--lateness",
                        str(self.out / f"{name}.lateness"),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        readers = [Lines(child) for child in children]
        for reader in readers:
            reader.expect("ready", timeout=120)
        processed = 0
        sweep_seconds = 0.0
        sweeps = 0
        boundary = S3_START.timestamp()
        clocks: list[tuple[float, float]] = []  # (travelled clock, real time when read)
        last_due = S3_START.timestamp() + 3600
        while processed < n:
            boundary += interval
            # Every worker sleeps until the boundary; if a sweep ran past it,
            # the next one starts at once (no jump back in time).
            now_sim = max((sim + (time.time() - real) for sim, real in clocks), default=0.0)
            target = max(boundary, now_sim)
            started = time.perf_counter()
            for child in children:
                send(child, f"go {target}")
            clocks = []
            for reader in readers:
                _done, sim, runs = reader.expect("done").split()
                clocks.append((float(sim), time.time()))
                processed += int(runs)
            sweep_seconds += time.perf_counter() - started
            sweeps += 1
            if boundary > last_due + 10 * interval:
                break
        for child in children:
            send(child, "stop")
        lateness = array("d")
        rss = []
        queries = 0
        cpu = {"cpu_seconds": 0.0, "db_cpu_seconds": 0.0}
        for child in children:
            if child.wait() != 0:
                raise RuntimeError(f"{child.name} failed: see {self.out / (child.name + '.log')}")
            result = json.loads((self.out / f"{child.name}.json").read_text())
            queries += result["queries"]
            cpu["cpu_seconds"] += result["cpu_seconds"]
            cpu["db_cpu_seconds"] += result["db_cpu_seconds"] or 0
            rss.append(child.peak_rss_mb)
            with open(self.out / f"{child.name}.lateness", "rb") as values:
                data = values.read()
            lateness.frombytes(data)
        if processed != n or len(lateness) != n:
            raise RuntimeError(
                f"S3 with {workers} workers processed {processed} runs, {len(lateness)} timed; expected {n}"
            )
        ordered = sorted(lateness)
        p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
        rate = n / sweep_seconds
        self.row(
            f"S3 timers, {workers} worker{'s' if workers > 1 else ''}",
            n,
            sweep_seconds,
            rate=rate,
            unit="runs/s",
            rss=" / ".join(fmt_mb(value) for value in rss),
            queries=fmt_int(queries),
            note=f"{sweeps} sweeps every {interval} s; lateness p50 {p50:.1f} s, p99 {p99:.1f} s, max {ordered[-1]:.1f} s",
            cpu=cpu,
        )
        return {"rate": rate, "p50": p50, "p99": p99, "rss_max": max(rss)}

    # --- S2 ---

    def run_s2(self, n: int) -> None:
        from maestra.api.models import ApiKey

        flow = self.launch(
            {
                "format": "maestra.flow/1",
                "name": "Bench S2 orders",
                "timezone": "UTC",
                "launch_limit": {"mode": "every_time", "period": None, "max_total": None},
                "nodes": [
                    {"key": "start", "kind": "event", "config": {"event_type": "bench_order"}},
                    {
                        "key": "thanks",
                        "kind": "steps",
                        "config": {
                            "relevance": "P1D",
                            "steps": [{"action": "send", "channel": "email", "template": "bench-order"}],
                        },
                    },
                ],
                "edges": [{"from": "start", "to": "thanks"}],
            }
        )
        _key_row, key = ApiKey.objects.create_key(name="bench")
        port = free_port()
        worker_dir = self.out / "gunicorn-workers"
        worker_dir.mkdir(exist_ok=True)
        env = dict(self.env)
        env.update(
            {
                "API_THROTTLE_RATE": "",  # no per-key rate limit: we measure the server, not the throttle
                "DB_CONN_MAX_AGE": "600",  # persistent connections, as in production
                "BENCH_WORKER_DIR": str(worker_dir),
            }
        )
        server = self.start_child(
            "gunicorn",
            [
                str(ROOT / ".venv/bin/gunicorn"),
                "maestra.wsgi:application",
                "-w",
                str(self.args.gunicorn_workers),
                "-b",
                f"127.0.0.1:{port}",
                "-c",
                "bench/gunicorn_conf.py",
                "--timeout",
                "300",
            ],
            env=env,
        )
        spies: list[subprocess.Popen] = []
        try:
            self.wait_for_server(port)
            sweepers = []
            for index in range(self.args.s2_engine_workers):
                name = f"s2-sweeper-{index}"
                sweepers.append(
                    self.start_child(
                        name,
                        [PYTHON, "bench/stage.py", "sweeper", "--out", str(self.out / f"{name}.json")],
                        env=self.env,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                    )
                )
            for sweeper in sweepers:
                Lines(sweeper).expect("ready", timeout=120)
            if self.args.profile:
                # py-spy attaches to each gunicorn worker and to the engine
                # workers; each writes its profile when its process exits.
                for pid in [*children_of(server.proc.pid), *(sweeper.proc.pid for sweeper in sweepers)]:
                    spies.append(
                        subprocess.Popen(
                            [
                                str(ROOT / ".venv/bin/py-spy"),
                                "record",
                                "-p",
                                str(pid),
                                "-r",
                                "100",
                                "-f",
                                "raw",
                                "--nonblocking",
                                "-o",
                                str(self.out / f"s2-{pid}.pyspy"),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
            customers = min(n, scalar("SELECT count(*) FROM customers_customer"))
            client = self.start_child(
                "s2-client",
                [
                    PYTHON,
                    "bench/s2_client.py",
                    "--url",
                    f"http://127.0.0.1:{port}",
                    "--key",
                    key,
                    "--events",
                    str(n),
                    "--customers",
                    str(customers),
                    "--concurrency",
                    str(self.args.concurrency),
                    "--singles",
                    str(self.args.singles),
                    "--out",
                    str(self.out / "s2-client.json"),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            Lines(client).expect("batches-done")
            drained_at = self.wait_until_drained(flow.pk, n)
            send(client, "go")
            if client.wait() != 0:
                raise RuntimeError(f"the S2 client failed: see {self.out / 's2-client.log'}")
            for sweeper in sweepers:
                send(sweeper, "stop")
            for sweeper in sweepers:
                if sweeper.wait() != 0:
                    raise RuntimeError(f"{sweeper.name} failed: see {self.out / (sweeper.name + '.log')}")
        finally:
            server.proc.send_signal(signal.SIGTERM)
            server.wait()
        for spy in spies:
            spy.wait(timeout=60)
        result = json.loads((self.out / "s2-client.json").read_text())
        sweeps = [json.loads((self.out / f"{sweeper.name}.json").read_text()) for sweeper in sweepers]
        sweep = {
            "queries": sum(part["queries"] for part in sweeps),
            "cpu_seconds": sum(part["cpu_seconds"] for part in sweeps),
            "db_cpu_seconds": sum(part["db_cpu_seconds"] or 0 for part in sweeps),
        }
        workers = [json.loads(path.read_text()) for path in worker_dir.glob("*.json")]
        if result["accepted"] != n or result["error_count"] or result["single_error_count"]:
            raise RuntimeError(
                f"S2: accepted {result['accepted']} of {n}; errors {result['errors']} {result['single_errors']}"
            )
        messages = scalar(
            "SELECT count(*) FROM channels_message WHERE node_key = 'thanks' AND status = 'queued'"
        )
        if messages < n:
            raise RuntimeError(f"S2: {messages} messages queued for {n} events")
        ingest_seconds = result["t_end"] - result["t_start"]
        e2e_seconds = drained_at - result["t_start"]
        worker_rss = " / ".join(fmt_mb(w["peak_rss_mb"]) for w in workers)
        worker_queries = sum(w["queries"] for w in workers)
        batch = result["batch_latencies"]
        self.row(
            f"S2 events accepted (HTTP, batches of 1,000, {self.args.concurrency} clients)",
            n,
            ingest_seconds,
            unit="events/s",
            rss=f"gunicorn workers {worker_rss}",
            queries=fmt_int(worker_queries),
            note=f"{self.args.gunicorn_workers} gunicorn workers; batch p50 {percentile(batch, 50) * 1000:.0f} ms, "
            f"p99 {percentile(batch, 99) * 1000:.0f} ms",
        )
        latency = self.event_to_message_latency()
        e2e = self.row(
            "S2 end to end (event posted -> message queued)",
            n,
            e2e_seconds,
            unit="events/s",
            rss="engine workers " + " / ".join(fmt_mb(sweeper.peak_rss_mb) for sweeper in sweepers),
            queries=fmt_int(sweep["queries"]),
            note=f"ingestion and {len(sweepers)} engine worker(s) concurrently; "
            f"per-event latency p50 {latency[0]:.1f} s, "
            f"p99 {latency[1]:.1f} s",
            cpu=sweep,
        )
        singles = result["single_latencies"]
        p50, p99 = percentile(singles, 50) * 1000, percentile(singles, 99) * 1000
        self.row(
            "S2 single-event posts (sequential)",
            len(singles),
            sum(singles),
            unit="requests/s",
            note=f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {singles[-1] * 1000:.1f} ms",
        )
        self.target("S2 >= 5,000 events/s end to end", e2e["rate"] >= 5000, f"{e2e['rate']:,.0f}/s")
        self.target("S2 single-event p99 < 50 ms", p99 < 50, f"{p99:.1f} ms")
        for sweeper in sweepers:
            self.rss_points.append(("S2 engine worker", n, sweeper.peak_rss_mb))
        for w in workers:
            self.rss_points.append(("S2 gunicorn worker", n, w["peak_rss_mb"]))

    def wait_until_drained(self, flow_id: int, n: int, *, stall: float = 600) -> float:
        """The moment every event's run has left the steps node (its message
        queued), read from the hourly node counters the engine keeps: a cheap
        query, polled every 0.2 s. Fails if nothing moves for `stall` seconds."""
        done, last, moved_at = 0, -1, time.monotonic()
        while done < n:
            time.sleep(0.2)
            done = scalar(
                "SELECT coalesce(sum(count), 0) FROM flows_nodestat WHERE flow_id = %s AND node_key = 'thanks' "
                "AND metric = 'exit:next' AND NOT is_test",
                [flow_id],
            )
            if done != last:
                last, moved_at = done, time.monotonic()
            elif time.monotonic() - moved_at > stall:
                raise RuntimeError(f"S2: {done} of {n} runs done and nothing moved for {stall:.0f} s")
        return time.time()

    def wait_for_server(self, port: int) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/flows", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer on port {port}; see {self.out / 'gunicorn.log'}")

    def event_to_message_latency(self) -> tuple[float, float]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l) "
                "FROM (SELECT extract(epoch FROM m.created_at - e.received_at) AS l FROM channels_message m "
                "JOIN flows_run r ON r.id = m.run_id JOIN customers_event e ON e.id = r.trigger_event_id "
                "WHERE m.node_key = 'thanks' AND e.external_id LIKE 'b-%%') x"
            )
            p50, p99 = cursor.fetchone()
        return float(p50), float(p99)

    # --- report ---

    def rss_target(self) -> None:
        points = [(label, n, mb) for label, n, mb in self.rss_points if mb is not None]
        if not points:
            return
        worst = max(points, key=lambda p: p[2])
        self.target(
            "peak RSS of every engine process < 300 MB", worst[2] < 300, f"max {worst[2]:.0f} MB ({worst[0]})"
        )
        small = {label.split(" ", 1)[1]: mb for label, n, mb in points if label.startswith("S1@")}
        big = {label.split(" ", 1)[1]: mb for label, n, mb in points if label.startswith("S1 ")}
        for stage in sorted(set(small) & set(big)):
            growth = big[stage] - small[stage]
            self.target(
                f"S1 {stage}: peak RSS flat from {self.args.rss_check_n:,} to {self.args.n:,} customers",
                growth < 0.25 * small[stage],
                f"{small[stage]:.0f} MB -> {big[stage]:.0f} MB",
            )

    def table(self) -> str:
        lines = [
            "| scenario | N | seconds | rate | CPU s (process + its DB backend) | peak RSS (MB) | queries | notes |",
            "|---|---:|---:|---:|---:|---|---:|---|",
        ]
        for row in self.rows:
            rate = f"{row['rate']:,.0f} {row['unit']}" if row["rate"] else ""
            lines.append(
                f"| {row['scenario']} | {fmt_int(row['n'])} | {row['seconds']:.2f} | {rate} | {row['cpu']} | {row['rss']} | "
                f"{row['queries']} | {row['note']} |"
            )
        return "\n".join(lines)

    def report(self, *, complete: bool) -> str:
        self.rss_target()
        kind = "quick run" if self.args.quick else "run"
        facts = self.facts
        header = (
            f"## {facts['date']}: {kind}, N = {self.args.n:,}{'' if complete else ' (INCOMPLETE: failed)'}\n\n"
            f"- commit {facts['commit']}; `{' '.join(sys.argv[1:]) or '(defaults)'}`\n"
            f"- {facts['cpus']} CPUs ({facts['cpu_model']}), PostgreSQL {facts['postgres']} on the same machine, "
            f"Python {facts['python']}\n"
            f"- load average (1/5/15 min) at start {facts['load_start']}, at end "
            f"{'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())} (other work on the machine shares its {facts['cpus']} CPUs)\n"
        )
        parts = [header, self.table()]
        if self.ratios:
            parts.append("Ratios (measured in the same run):\n\n" + "\n".join(f"- {r}" for r in self.ratios))
        if self.targets:
            marks = {True: "met", False: "MISSED", None: "n/a"}
            parts.append(
                "Targets:\n\n"
                + "\n".join(f"- {marks[ok]}: {text} ({detail})" for text, ok, detail in self.targets)
            )
        if self.notes:
            parts.append("\n".join(f"- {note}" for note in self.notes))
        return "\n\n".join(parts) + "\n"

    # --- main ---

    def run(self) -> int:
        args = self.args
        self.rss_points: list[tuple[str, int, float | None]] = []
        complete = False
        try:
            self.log(f"fresh database {args.database_url}; logs in {self.out}")
            self.create_database()
            setup_django()
            self.machine_facts()
            if scalar("SHOW autovacuum") == "off":
                self.autovacuum = AutovacuumStandIn(args.database_url, self.log).start()
                self.notes.append(
                    "autovacuum is off on this PostgreSQL server: the harness ran its stand-in "
                    "(ANALYZE at 10% changed, VACUUM at 20% dead, checked every 30 s)"
                )
            customers = max(args.n, args.timers, args.events, args.rss_check_n)
            seconds = self.generate_customers(customers)
            self.log(f"{customers:,} customers with subscriptions in {seconds:.1f} s (set-based SQL)")
            self.make_templates()
            scenarios = set(args.only.split(","))
            if "s1" in scenarios:
                if args.rss_check_n:
                    self.run_s1(args.rss_check_n, week=0, full=False)
                    self.reset_flow_tables()
                self.run_s1(args.n, week=1, full=True)
            if "s3" in scenarios:
                self.run_s3(args.timers)
                self.reset_flow_tables()
            if "s2" in scenarios:
                self.run_s2(args.events)
            complete = True
        except BaseException as exc:
            self.notes.append(f"the run stopped early: {type(exc).__name__}: {exc}")
            raise
        finally:
            if self.facts:
                report = self.report(complete=complete)
                print("\n" + report)
                if not args.no_results and (complete or self.rows):
                    with open(RESULTS, "a") as results:
                        results.write("\n" + report)
                    self.log(f"appended to {RESULTS}")
        return 0


def _stop_on_sigterm(signum, frame):
    # A run stopped from outside still appends what it measured (see Bench.run).
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    parser = argparse.ArgumentParser(description="Maestra flows benchmark (see bench/README.md)")
    parser.add_argument("--n", type=int, default=1_000_000, help="S1 audience (and default S3 timers)")
    parser.add_argument("--quick", action="store_true", help="small sizes (N=5,000): a minute or two")
    parser.add_argument("--events", type=int, help="S2 events (default N/5)")
    parser.add_argument("--timers", type=int, help="S3 waiting runs (default N)")
    parser.add_argument("--rss-check-n", type=int, help="S1 also at this size first, to see RSS stay flat")
    parser.add_argument("--sample", type=int, help="naive reference sample (default 2,000)")
    parser.add_argument("--deliver-max", type=int, help="messages delivered through locmem (default 100,000)")
    parser.add_argument("--smtp-max", type=int, help="messages delivered through SMTP (default 20,000)")
    parser.add_argument("--singles", type=int, help="S2 single-event posts (default 1,000)")
    parser.add_argument(
        "--s1-workers", type=int, default=2, help="engine processes sharing each S1 stage (default 2)"
    )
    parser.add_argument(
        "--s2-engine-workers", type=int, default=2, help="engine processes sweeping during S2 (default 2)"
    )
    parser.add_argument(
        "--hosts",
        type=int,
        default=0,
        help="run S1's engine workers on this many simulated hosts (scripts/netns.sh up H first)",
    )
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4, help="S2 client threads")
    parser.add_argument("--sweep-seconds", type=int, default=60, help="S3 sweep interval")
    parser.add_argument("--only", default="s1,s2,s3", help="comma-separated scenarios")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/maestra_bench"),
        help="dropped and created afresh",
    )
    parser.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument(
        "--profile", action="store_true", help="run S1's stages under py-spy (slower; not for figures)"
    )
    args = parser.parse_args()
    if args.quick and "--n" not in sys.argv:
        args.n = 5_000
    small = args.quick or args.n < 100_000
    args.events = args.events or max(1000, args.n // 5)
    args.timers = args.timers or args.n
    if args.rss_check_n is None:
        args.rss_check_n = args.n // 10 if args.n >= 1_000_000 else 0
    args.sample = args.sample or (200 if args.quick else 500 if small else 2000)
    # Delivery is measured on the first messages of the outbox (a cap keeps a
    # slow backend from dominating the run); the table says how many.
    args.deliver_max = args.deliver_max or (2_000 if args.quick else 100_000)
    args.smtp_max = args.smtp_max or (2_000 if args.quick else 20_000)
    args.singles = args.singles or (100 if args.quick else 1000 if not small else 300)
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
