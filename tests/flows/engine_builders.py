"""Building blocks for the engine tests: customers in bulk, templates,
segments and flows launched from small documents."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

from channels.models import Template
from customers.models import Customer
from tests.flows.engine_kit import chain, node
from tests.flows.engine_kit import document as kit_document

ROOT = Path(__file__).resolve().parents[2]


def make_customers(count: int, *, prefix: str = "c") -> list[int]:
    """`count` customers with valid email addresses; their ids, ascending."""
    Customer.objects.bulk_create(
        [Customer(external_id=f"{prefix}{n}", email=f"{prefix}{n}@example.com") for n in range(count)],
        batch_size=5000,
    )
    return list(
        Customer.objects.filter(external_id__startswith=prefix).order_by("id").values_list("id", flat=True)
    )


def email_template(slug: str) -> Template:
    """A service template: sent to any customer with a valid address."""
    return Template.objects.create(
        slug=slug,
        name=slug,
        channel="email",
        purpose=Template.Purpose.SERVICE,
        subject=f"{slug} for {{{{ customer.first_name }}}}",
        text="Hello",
    )


def event_start(event_type: str = "signed_up", key: str = "start") -> dict:
    return node(key, "event", event_type=event_type, filter=None)


def schedule_start(segment: str, key: str = "start", at: str = "10:00") -> dict:
    return node(
        key,
        "schedule",
        recurrence={"every": "day", "at": at},
        timezone="UTC",
        audience={"segment": segment, "rule": None},
    )


def document(
    nodes: list[dict],
    edges: list[dict],
    *,
    name: str = "Engine test",
    launch_limit: dict | None = None,
    timezone: str = "UTC",
) -> dict:
    """engine_kit.document with an explicit open flow schedule."""
    return kit_document(
        nodes,
        edges,
        name=name,
        launch_limit=launch_limit,
        timezone=timezone,
        schedule={"start_at": None, "end_at": None},
    )


def chained(*nodes: dict, event_type: str = "never", launch_limit: dict | None = None) -> dict:
    """A document: an event start (by default one nothing sends: the runs come
    from segments), then `nodes` along their `next` ports."""
    keys = ["start", *(each["key"] for each in nodes)]
    return document([event_start(event_type), *nodes], chain(*keys), launch_limit=launch_limit)


# --- Subprocesses against the test database ---------------------------------------


def database_url() -> str:
    """The URL of the database this test runs on (the test database), for
    worker subprocesses."""
    s = connection.settings_dict
    auth = s["USER"] or ""
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    host = s["HOST"] or "127.0.0.1"
    port = s["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{s['NAME']}"


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        SECRET_KEY=env.get("SECRET_KEY", "test-only-secret-key"),
        DEBUG="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str], **popen: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def ticks_side_by_side(
    workers: int, *, env: dict[str, str], timeout: float, label: str
) -> list[dict[str, int]]:
    """`workers` processes of `flows_tick --no-deliver` started together;
    each must exit 0. Returns each one's counts (and prints them, with the
    time taken, under `label`)."""
    started = time.monotonic()
    processes = [manage("flows_tick", "--no-deliver", env=env) for _ in range(workers)]
    outputs = [process.communicate(timeout=timeout) for process in processes]
    print(f"{label}: {time.monotonic() - started:.1f}s")
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    counts = [parse_counts(out) for out, _ in outputs]
    print("worker counts:", counts)
    return counts


def parse_counts(stdout: str) -> dict[str, int]:
    """`key: value` lines printed by flows_tick."""
    counts = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep and value.strip().isdigit():
            counts[key.strip()] = int(value)
    return counts


def wait_until(
    done: Callable[[], bool], *, timeout: float, interval: float, failure: Callable[[], str]
) -> None:
    """Poll `done()` every `interval` seconds until it is true; when `timeout`
    seconds pass first, AssertionError saying `failure()`."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(failure())
        time.sleep(interval)


def other_sessions() -> int:
    """Sessions connected to this (the test) database besides this one."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def wait_for_other_connections_to_close(timeout: float = 20.0) -> None:
    """Block until no other session is connected to the test database: a
    killed worker's server process may hold its row locks a moment longer,
    and a clean tick must not skip those runs as someone else's."""
    wait_until(
        lambda: not other_sessions(),
        timeout=timeout,
        interval=0.1,
        failure=lambda: f"{other_sessions()} other session(s) still connected to the test database",
    )


class StartTogether:
    """A start barrier for worker processes on PostgreSQL: holds an exclusive
    lock on the runs table, so every worker blocks at its first look at the
    runs; `release(n)` waits until n sessions are blocked there, then lets
    them all go at once. Without it, a worker that starts a second late on a
    busy machine may find the work already done, and a test meant to show two
    workers sharing a batch shows one."""

    def __init__(self, table: str = "flows_run"):
        import psycopg

        settings = connection.settings_dict
        self.table = table
        self.conn = psycopg.connect(
            dbname=settings["NAME"],
            user=settings["USER"] or None,
            password=settings["PASSWORD"] or None,
            host=settings["HOST"] or None,
            port=settings["PORT"] or None,
        )
        self.conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    def release(self, n: int, timeout: float = 60.0) -> None:
        def blocked() -> int:
            query = "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted"
            return self.conn.execute(query, [self.table]).fetchone()[0]

        try:
            wait_until(
                lambda: blocked() >= n,
                timeout=timeout,
                interval=0.05,
                failure=lambda: f"only {blocked()} of {n} workers reached the barrier",
            )
        finally:
            self.conn.rollback()  # releases the lock
            self.conn.close()
