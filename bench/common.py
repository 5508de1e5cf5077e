"""Shared by the benchmark's processes: Django set-up, the query counter,
peak-RSS readings, child processes, and the fixed moments the scenarios travel to.

Every measured stage runs in a process of its own, so the peak RSS we report
is that process's (os.wait4 gives the child's own ru_maxrss), and its query
count comes from a connection.execute_wrapper installed in that process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = str(ROOT / ".venv" / "bin" / "python")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def server_arguments() -> argparse.Namespace:
    """--port, --out and --host of the test servers (bench/smtp_sink.py,
    bench/http_batch_stub.py). --host 0.0.0.0 for bench/delivery.py --hosts:
    workers in network namespaces reach the server over their veth."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    return parser.parse_args()


# --- Moments (UTC) -------------------------------------------------------------
# S1 lives in the future so that nothing running in real time (S2's worker,
# S3's sweeps) can ever fire its weekly schedule; its processes travel there
# with time_machine. Week k of S1 (k = 0 for the 100k size check, 1 for the
# full size) launches on Monday 08:00 and fires at 10:00 the same day.
S1_WEEK0_LAUNCH = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
S1_FIRE_HOUR = 10
# S3's timers are due over one hour from this moment (its workers travel).
S3_START = datetime(2031, 3, 3, 12, 0, tzinfo=UTC)


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maestra.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    import django

    django.setup()


class QueryCounter:
    """connection.execute_wrapper that counts statements (an executemany is one)."""

    def __init__(self) -> None:
        self.count = 0
        # Seconds spent in each kind of statement (its first words), written
        # into the stage's JSON: where the database time of a stage goes.
        self.seconds: dict[str, float] = {}

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = " ".join(sql.split()[:6])[:80]
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started

    def top(self, n: int = 12) -> dict[str, float]:
        ranked = sorted(self.seconds.items(), key=lambda item: -item[1])[:n]
        return {key: round(value, 3) for key, value in ranked}

    def install(self) -> QueryCounter:
        from django.db import connection

        connection.execute_wrappers.append(self)
        return self


def vm_hwm_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size of a live process, from /proc (None if gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def write_result(path: str | None, result: dict) -> None:
    result.setdefault("peak_rss_mb", vm_hwm_mb())
    text = json.dumps(result, default=str)
    if path:
        Path(path).write_text(text)
    else:
        print(text)


@dataclass
class Child:
    """A child process whose own peak RSS we read when it ends."""

    proc: subprocess.Popen
    name: str
    started: float
    peak_rss_mb: float | None = None
    seconds: float | None = None
    returncode: int | None = None

    @classmethod
    def start(cls, args: list[str], *, name: str, env: dict, log: Path, **kwargs) -> Child:
        log_file = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        kwargs.setdefault("stdout", log_file)
        kwargs.setdefault("stderr", log_file)
        proc = subprocess.Popen(args, env=env, cwd=ROOT, **kwargs)
        return cls(proc=proc, name=name, started=time.perf_counter())

    def wait(self) -> int:
        """Reap the child with wait4, which reports its own rusage."""
        if self.returncode is not None:
            return self.returncode
        _pid, status, usage = os.wait4(self.proc.pid, 0)
        self.seconds = time.perf_counter() - self.started
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode  # so Popen never waits again
        self.peak_rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
        return self.returncode


def run_child(args: list[str], *, name: str, env: dict, log: Path, check: bool = True) -> Child:
    child = Child.start(args, name=name, env=env, log=log)
    code = child.wait()
    if check and code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name} exited with {code}; end of {log}:\n{tail}")
    return child


def iso(moment: datetime) -> str:
    return moment.isoformat()


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def percentile(sorted_values, q: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, min(n, int(-(-q * n // 100))))
    return float(sorted_values[rank - 1])


def _proc_cpu_seconds(pid: int | str) -> float | None:
    """utime + stime of a process on this machine, in seconds (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall time, this process's CPU time and its PostgreSQL backend's CPU
    time (PostgreSQL runs on this machine: /proc tells). On a shared machine
    wall time stretches with the load; CPU time much less."""

    def __enter__(self) -> Meter:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.backend = cursor.fetchone()[0]
        self.db0 = _proc_cpu_seconds(self.backend)
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()
        self.started_at = time.time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.ended_at = time.time()
        self.cpu_seconds = time.process_time() - self.cpu0
        db1 = _proc_cpu_seconds(self.backend)
        self.db_cpu_seconds = None if db1 is None or self.db0 is None else db1 - self.db0

    def result(self) -> dict:
        return {
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "db_cpu_seconds": self.db_cpu_seconds,
            # Epoch seconds: the span of a stage shared by several processes.
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }
