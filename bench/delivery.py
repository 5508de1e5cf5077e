"""Delivery throughput: N queued messages drained by W delivery worker
processes (`manage.py deliver_messages`, as many as MAESTRA_DELIVERY_WORKERS
drains would be), once to a real SMTP server on loopback (bench/smtp_sink.py)
and once to an HTTP batch provider stub (bench/http_batch_stub.py) through
BatchJsonBackend. Prints messages/s and the machine's load, and appends the
figures to bench/RESULTS.md (unless --no-results).

    .venv/bin/python bench/delivery.py --n 20000
    .venv/bin/python bench/delivery.py --n 100000 --only smtp --workers 2
    .venv/bin/python bench/delivery.py --n 20000 --only smtp --via qcluster
    .venv/bin/python bench/delivery.py --n 20000 --workers 2 --hosts 2   # scripts/netns.sh up 2 first

It uses a database of its own, `maestra_bench_delivery` on the local
PostgreSQL (--database-name, which must start with "maestra_bench": it is
DROPPED and created again), whatever DATABASE_URL the shell has.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SERVER = "postgres://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_database(name: str) -> str:
    if not name.startswith("maestra_bench"):
        raise SystemExit(
            f"refusing to drop {name!r}: the benchmark's database name starts with maestra_bench"
        )
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{SERVER}/{name}"


def base_env(url: str, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATABASE_URL=url,
        SECRET_KEY=env.get("SECRET_KEY", "bench-only-secret-key"),
        MAESTRA_DELIVERY_CHUNK=str(args.chunk),
        MAESTRA_DELIVERY_GROUP=str(args.group),
        MAESTRA_SMTP_CONNECTIONS=str(args.smtp_connections),
        PYTHONPATH=str(ROOT),
    )
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    if args.rate_limit:
        env["MAESTRA_RATE_LIMITS"] = args.rate_limit
    return env


def queue(env: dict, *, channel: str, n: int, wake: bool = False) -> float:
    """N service messages, rendered, due now: bulk rows through the ORM.
    With `wake`, the messages are written in one transaction that wakes
    delivery when it commits (what the outbox does), and the table is not
    vacuumed first. Returns the time of the commit (time.time())."""
    code = f"""
import django, os, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maestra.settings")
django.setup()
from django.db import transaction
from django.utils import timezone
from channels.models import Message
from customers.models import Customer
from maestra.wake.core import DELIVERY, wake
n, channel, wake_up = {n}, {channel!r}, {wake!r}
if not wake_up:
    Message.objects.all().delete()
    Customer.objects.all().delete()
Customer.objects.bulk_create(
    (Customer(external_id=f"b{{i}}", email=f"b{{i}}@example.com", phone=f"+4915{{i:08d}}") for i in range(n)),
    batch_size=5000,
)
now = timezone.now()
ids = Customer.objects.order_by("id").values_list("id", "email", "phone")
def rendered(email, phone):
    if channel == "email":
        return {{"to": email, "subject": "Your order", "text": "Thank you for your order. " * 8,
                "html": "<p>" + "Thank you for your order. " * 8 + "</p>"}}
    return {{"to": phone, "text": "Your code is 123456"}}
with transaction.atomic():
    Message.objects.bulk_create(
        (Message(customer_id=cid, template_slug="bench", channel=channel, rendered=rendered(email, phone),
                 next_attempt_at=now, created_at=now) for cid, email, phone in ids.iterator()),
        batch_size=5000,
    )
    if wake_up:
        wake(DELIVERY)
print(time.time())
"""
    done = subprocess.run([PYTHON, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    if not wake:
        subprocess.run(
            [PYTHON, "manage.py", "dbshell", "--", "-c", "VACUUM ANALYZE channels_message"],
            env=env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return float(done.stdout.split()[-1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuPoller:
    """CPU seconds of a set of processes, read by a thread every 0.2 s while
    they live; each one's last reading counts (the processes are not ours to
    reap). What a busy machine stretches least. Subclasses say which
    processes (`poll`)."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def poll(self) -> None:
        raise NotImplementedError

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


class BackendCpu(CpuPoller):
    """The PostgreSQL backends serving the benchmark's database (PostgreSQL
    runs on this machine)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def poll(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                pids = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()"
                ).fetchall()
                for (pid,) in pids:
                    # A backend may end between the query and the read.
                    with contextlib.suppress(OSError, IndexError):
                        self.seconds[pid] = cpu_seconds(pid)
                self.stop.wait(0.2)


class SessionCpu(CpuPoller):
    """Every process of a session (`manage.py qcluster` started with
    start_new_session: its sentinel, monitor, pusher and workers)."""

    def __init__(self, session: int) -> None:
        super().__init__()
        self.session = session

    def poll(self) -> None:
        while not self.stop.is_set():
            self.read()
            self.stop.wait(0.2)
        self.read()

    def read(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            # A process may end between the listing and the read.
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[3]) == self.session:
                    ticks = int(fields[11]) + int(fields[12])
                    self.seconds[int(entry.name)] = ticks / os.sysconf("SC_CLK_TCK")


def database_counters(url: str) -> dict[str, int]:
    """Commits and row writes in the benchmark's database so far
    (pg_stat_database): per message, what no load on the machine changes."""
    import psycopg

    time.sleep(1)  # the ended workers' statistics reach the shared counters
    with psycopg.connect(url, autocommit=True) as conn:
        commits, updated, inserted = conn.execute(
            "SELECT xact_commit, tup_updated, tup_inserted FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return {"commits": commits, "updated": updated, "inserted": inserted}


def on_host(env: dict, host: int) -> dict:
    """`env` as seen from simulated host `host` (scripts/netns.sh): this
    machine, PostgreSQL, Redis and the sink/stub are at 10.77.<host>.1."""
    here = f"10.77.{host}.1"
    return {key: value.replace("127.0.0.1", here) for key, value in env.items()}


def drain(env: dict, *, workers: int, profile: str = "", hosts: int = 0) -> tuple[float, list[dict], float]:
    """Run the workers to their end: seconds, their counts, their CPU seconds.
    With `hosts`, worker i runs in network namespace maestra-host<i % hosts + 1>."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                *(["ip", "netns", "exec", f"maestra-host{i % hosts + 1}"] if hosts else []),
                PYTHON,
                *(["-m", "cProfile", "-o", f"{profile}/worker-{i}.prof"] if profile else []),
                "manage.py",
                "deliver_messages",
                "--limit",
                "1000",
            ],
            env=on_host(env, i % hosts + 1) if hosts else env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    counts = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"a delivery worker failed: {err[-2000:]}")
        counts.append(dict(item.split("=") for item in out.split()))
    seconds = time.perf_counter() - started
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = cpu.ru_utime + cpu.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    return seconds, counts, used


def start_child(cmd: list[str], env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"{cmd[1]} did not start: {line!r}")
    return proc


def stop_child(proc: subprocess.Popen, out: Path) -> dict:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    return json.loads(out.read_text())


def start_server(kind: str, env: dict, args, tmp: Path) -> tuple[subprocess.Popen, Path, str]:
    """The SMTP sink or the HTTP batch stub on a free port; `env` is pointed
    at it. Returns the process, the file it writes its counts to, and the
    row's name."""
    port = free_port()
    out = tmp / f"{kind}.json"
    script = "bench/smtp_sink.py" if kind == "smtp" else "bench/http_batch_stub.py"
    # With --hosts the workers reach it over their veth, not loopback.
    bind = ["--host", "0.0.0.0"] if args.hosts else []
    proc = start_child([PYTHON, script, "--port", str(port), "--out", str(out), *bind], env)
    if kind == "smtp":
        env.update(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(port),
            EMAIL_USE_TLS="0",
            EMAIL_USE_SSL="0",
        )
        return proc, out, "SMTP (bench/smtp_sink.py)"
    options = {"url": f"http://127.0.0.1:{port}/batch", "batch_size": args.batch_size, "results": "results"}
    env.update(
        MAESTRA_SMS_BACKEND="channels.backends.batch_json.BatchJsonBackend",
        MAESTRA_BATCH_JSON=json.dumps({"sms": {**options, "id_field": "id"}}),
    )
    return proc, out, f"HTTP batch stub (batches of {args.batch_size})"


def run(kind: str, url: str, args, tmp: Path) -> dict:
    """One measurement: `kind` "smtp" (email) or "http" (SMS through the batch stub)."""
    env = base_env(url, args)
    channel = "email" if kind == "smtp" else "sms"
    server, out, name = start_server(kind, env, args, tmp)
    load = os.getloadavg()[0]
    try:
        if args.via == "qcluster":
            seconds, counts, cpu, database, before = drain_cluster(env, url, channel=channel, n=args.n)
        else:
            queue(env, channel=channel, n=args.n)
            load = os.getloadavg()[0]
            before = database_counters(url)
            with BackendCpu(url) as database:
                seconds, counts, cpu = drain(
                    env, workers=args.workers, profile=args.profile, hosts=args.hosts
                )
        server_cpu = cpu_seconds(server.pid)
        after = database_counters(url)
    finally:
        stats = stop_child(server, out)
    stats.update(worker_cpu=cpu, server_cpu=server_cpu, database_cpu=database.total)
    stats.update(
        {f"{key}_per_message": (after[key] - before[key]) / args.n for key in ("commits", "updated")}
    )
    return result(name, args, seconds, counts, stats, load)


def drain_cluster(
    env: dict, url: str, *, channel: str, n: int
) -> tuple[float, list[dict], float, BackendCpu, dict]:
    """The backlog through `manage.py qcluster` with its default settings
    (2 workers, the ORM broker unless --redis-url): the cluster is started on
    an empty outbox and left to settle, then N messages are queued in one
    transaction that wakes delivery, as the engine's queueing does. Seconds:
    from that commit to the moment every message is sent (the cluster's
    start-up is not in it). Counts per delivery process, from the rows'
    owner tokens."""
    import psycopg

    queue(env, channel=channel, n=0)
    cluster = subprocess.Popen(
        [PYTHON, "manage.py", "qcluster"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its workers with it, stopped below by our own pid
    )
    try:
        _wait_for_line(cluster, "running")
        time.sleep(3)  # the start-up wake-ups run on an empty outbox
        before = database_counters(url)
        cluster_cpu = SessionCpu(cluster.pid)
        cluster_cpu.read()
        idle = dict(cluster_cpu.seconds)  # the start-up's CPU is not the drain's
        with BackendCpu(url) as database, cluster_cpu:
            committed = queue(env, channel=channel, n=n, wake=True)
            with psycopg.connect(url, autocommit=True) as conn:
                while True:
                    (left,) = conn.execute(
                        "SELECT count(*) FROM channels_message WHERE status NOT IN ('sent', 'failed')"
                    ).fetchone()
                    if not left:
                        break
                    time.sleep(0.1)
                seconds = time.time() - committed
                per_process = conn.execute(
                    "SELECT split_part(claimed_by, ':', 2), count(*) FILTER (WHERE status = 'sent'),"
                    " count(*) FILTER (WHERE status <> 'sent') FROM channels_message GROUP BY 1 ORDER BY 1"
                ).fetchall()
    finally:
        # The cluster and its workers (a session of their own); SIGKILL when
        # it does not stop in time: the measurement is over.
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait(timeout=30)
    counts = [{"sent": sent, "failed": other} for _pid, sent, other in per_process]
    # The cluster's processes, from the queueing's commit to the last send
    # (their start-up before it left out).
    per_pid = {pid: seconds - idle.get(pid, 0.0) for pid, seconds in cluster_cpu.seconds.items()}
    print(
        "cluster CPU s per process: " + ", ".join(f"{v:.1f}" for v in sorted(per_pid.values(), reverse=True)),
        file=sys.stderr,
    )
    used = sum(per_pid.values())
    return seconds, counts, used, database, before


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        if text in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"qcluster did not say {text!r}")


def result(name: str, args, seconds: float, counts: list[dict], server: dict, load: float) -> dict:
    """`seconds`: from starting the worker processes to their end (Django's
    start-up included); the server's rate: from its first message to its last."""
    sent = sum(int(c.get("sent", 0)) for c in counts)
    received = server["messages"]
    span = (server["last"] - server["first"]) if server.get("first") else 0.0
    failed = sum(int(c.get("failed", 0)) + int(c.get("retried", 0)) for c in counts)
    row = {
        "name": name,
        "n": args.n,
        "workers": args.workers,
        "hosts": args.hosts,
        "seconds": round(seconds, 2),
        "rate": sent / seconds if seconds else 0.0,
        "server_seconds": round(span, 2),
        "server_rate": received / span if span else 0.0,
        "sent": sent,
        "failed_or_retried": failed,
        "received": received,
        "per_worker": [int(c.get("sent", 0)) for c in counts],
        # The most messages the server received in one wall-clock second
        # (the SMTP sink counts them; the HTTP stub does not).
        "peak_per_second": server.get("peak_per_second"),
        # CPU seconds: all the workers together (start-up included; with
        # --via qcluster every process of the cluster, from the backlog's
        # commit on), and the sink/stub: what a busy machine cannot stretch.
        "worker_cpu": None if server["worker_cpu"] is None else round(server["worker_cpu"], 1),
        "server_cpu": round(server["server_cpu"], 1),
        "database_cpu": round(server["database_cpu"], 1),
        # Per message, in the benchmark's database (the queueing's own
        # commit and row writes included when --via qcluster).
        "commits_per_message": round(server["commits_per_message"], 3),
        "row_updates_per_message": round(server["updated_per_message"], 2),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(row), flush=True)
    if sent != args.n or received != args.n:
        print(f"WARNING: {name}: {sent} sent, {received} received of {args.n}", flush=True)
    return row


def append_results(rows: list[dict], args) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    lines = [
        "",
        f"## Delivery throughput (bench/delivery.py), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Commit {commit.stdout.strip()}; {os.cpu_count()} CPUs; Python {platform.python_version()};"
        + (
            " `manage.py qcluster` with its default settings (seconds: from the commit that queued the"
            " backlog to its last message sent), MAESTRA_SMTP_CONNECTIONS="
            if args.via == "qcluster"
            else f" {args.workers} delivery worker processes (`deliver_messages`), MAESTRA_SMTP_CONNECTIONS="
        )
        + f"{args.smtp_connections}, MAESTRA_DELIVERY_GROUP={args.group}, MAESTRA_DELIVERY_CHUNK={args.chunk};"
        " the sink/stub and PostgreSQL on the same machine; other sessions were running in parallel"
        " (load average in the table).",
        "",
        "| delivery | N | seconds (workers' start to end) | messages/s | at the server: first to last message |"
        " sent / received | per worker | CPU s: workers / database / server | commits, row updates per message |"
        " load 1 min before / after |",
        "|---|---:|---:|---:|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['n']:,} | {row['seconds']:.2f} | {row['rate']:,.0f} |"
            f" {row['server_seconds']:.2f} s, {row['server_rate']:,.0f}/s |"
            f" {row['sent']:,} / {row['received']:,} | {' + '.join(f'{w:,}' for w in row['per_worker'])} |"
            f" {row['worker_cpu']} / {row['database_cpu']} / {row['server_cpu']} |"
            f" {row['commits_per_message']}, {row['row_updates_per_message']} |"
            f" {row['load_before']} / {row['load_after']} |"
        )
    lines.append("")
    if args.rate_limit:
        limits = dict(part.split("=", 1) for part in args.rate_limit.split(","))
        per_second = int(limits.get("email", "0/s").split("/")[0])
        for row in rows:
            if row["name"].startswith("SMTP") and per_second:
                peak = row["peak_per_second"]
                lines.append(
                    f"- rate limit MAESTRA_RATE_LIMITS={args.rate_limit}: the SMTP server received at most"
                    f" {peak:,} messages in one wall-clock second, {row['rate']:,.0f}/s on average:"
                    f" {'held' if peak <= per_second else 'EXCEEDED'}"
                )
    for row in rows:
        if args.rate_limit:
            continue  # a limited run measures the limit, not the throughput
        if row["name"].startswith("SMTP"):
            lines.append(
                f"- SMTP: {row['rate']:,.0f} msgs/s against 249-351 msgs/s before (issue 13:"
                f" one drain, one connection): {row['rate'] / 351:.1f}x-{row['rate'] / 249:.1f}x;"
                f" target >= 1,000/s: {'met' if row['rate'] >= 1000 else 'MISSED'}"
            )
        else:
            lines.append(
                f"- HTTP batch: {row['rate']:,.0f} msgs/s; target >= 5,000/s:"
                f" {'met' if row['rate'] >= 5000 else 'MISSED'}"
            )
    with open(ROOT / "bench" / "RESULTS.md", "a") as results:
        results.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="delivery worker processes (default 2)")
    parser.add_argument("--smtp-connections", type=int, default=4)
    parser.add_argument(
        "--group", type=int, default=0, help="MAESTRA_DELIVERY_GROUP (0: one per SMTP session)"
    )
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--only", choices=["smtp", "http"], help="one of the two measurements")
    parser.add_argument(
        "--database-name",
        default=os.environ.get("BENCH_DELIVERY_DATABASE", "maestra_bench_delivery"),
        help="the database (dropped and created; must start with maestra_bench); env BENCH_DELIVERY_DATABASE",
    )
    parser.add_argument(
        "--via",
        choices=["processes", "qcluster"],
        default="processes",
        help="`deliver_messages` processes (--workers), or `manage.py qcluster` with its defaults",
    )
    parser.add_argument("--redis-url", default="", help="REDIS_URL for the workers (default: none)")
    parser.add_argument(
        "--rate-limit",
        default="",
        help="MAESTRA_RATE_LIMITS for the workers (e.g. email=500/s): the SMTP row then says whether"
        " the sink ever received more in one second",
    )
    parser.add_argument("--profile", default="", help="a directory: each worker runs under cProfile there")
    parser.add_argument(
        "--hosts",
        type=int,
        default=0,
        help="run the worker processes on this many simulated hosts (scripts/netns.sh up H first; not with --via qcluster)",
    )
    parser.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    if args.hosts and args.via == "qcluster":
        parser.error("--hosts runs `deliver_messages` processes; it does not apply to --via qcluster")
    url = recreate_database(args.database_name)
    env = base_env(url, args)
    subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("smtp", "http"):
            if args.only in (None, kind):
                rows.append(run(kind, url, args, Path(tmp)))
    if not args.no_results:
        append_results(rows, args)


if __name__ == "__main__":
    sys.exit(main())
