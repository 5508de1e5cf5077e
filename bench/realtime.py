"""Maestra as a user runs it, for the wake-up test (tests/flows/
test_realtime_cluster.py) and the S4 latency benchmark (bench/s4_latency.py):
a database of its own, `manage.py runserver` and `manage.py qcluster` as
subprocesses with the default settings (ORM broker, or Redis when given), and
a real SMTP server (aiosmtpd) on loopback, in this process, that notes when
each message arrives.

The stack: one service template, an `order_created` event start that sends
it, customers with an email address, an API key. Everything is set up with
the product's own commands (migrate, import_flow --launch, create_api_key).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from contextlib import closing, suppress
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]
EVENT_TYPE = "order_created"


def _flow(name: str, event_type: str) -> dict:
    """An event start that sends the service email at once."""
    steps = [{"action": "send", "channel": "email", "template": "order-confirmation"}]
    return {
        "format": "maestra.flow/1",
        "name": name,
        "timezone": "UTC",
        "launch_limit": {"mode": "every_time"},
        "nodes": [
            {"key": "start", "kind": "event", "config": {"event_type": event_type}},
            {"key": "send", "kind": "steps", "config": {"relevance": "P1D", "steps": steps}},
        ],
        "edges": [{"from": "start", "to": "send"}],
    }


# An event from outside, and a system event of PUT /customers.
FLOWS = [_flow("Order confirmation", EVENT_TYPE), _flow("Subscribed", "subscription_changed")]
SETUP = """
from channels.models import Template
from customers.services.customers import upsert_customers
Template.objects.create(slug="order-confirmation", name="Order confirmation", channel="email",
    purpose="service", subject="Your order {{ event.payload.order }}", text="Thank you.")
count = int({count})
for start in range(0, count, 1000):
    upsert_customers(rows=[{{"external_id": f"c{{i}}", "email": f"c{{i}}@example.com"}}
                           for i in range(start, min(count, start + 1000))])
if {no_schedules}:
    # Only the wake-ups can start the work (the test proves they do).
    from django_q.models import Schedule
    Schedule.objects.all().delete()
"""


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Recorder:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        now = time.monotonic()
        with self.changed:
            for rcpt in envelope.rcpt_tos:
                self.arrivals.setdefault(rcpt, now)
            self.changed.notify_all()
        return "250 Message accepted"


class Sink:
    """aiosmtpd on 127.0.0.1: the monotonic time each recipient's first
    message arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.recorder = _Recorder()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def wait_for(self, rcpts: set[str], timeout: float) -> dict[str, float]:
        """Arrival times of `rcpts`, waiting up to `timeout` seconds for all
        of them; the ones that did not arrive are missing from the result."""
        deadline = time.monotonic() + timeout
        with self.recorder.changed:
            while not rcpts <= self.recorder.arrivals.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.recorder.changed.wait(left)
            return {r: t for r, t in self.recorder.arrivals.items() if r in rcpts}


class Stack:
    """A database, runserver and qcluster, torn down on exit (database too)."""

    def __init__(
        self,
        *,
        sink: Sink,
        database_url: str | None = None,
        redis_url: str = "",
        customers: int = 10,
        no_schedules: bool = False,
    ) -> None:
        self.sink = sink
        self.tmp = Path(tempfile.mkdtemp(prefix="maestra-rt-"))
        self.name = f"maestra_rt_{uuid.uuid4().hex[:10]}"
        self.server_url, self.database_url = "", ""
        if database_url and database_url.startswith("postgres"):
            # Same server and user; created from (and dropped through) the
            # `postgres` database, which always exists.
            server = database_url.split("?", 1)[0].rsplit("/", 1)[0]
            self.admin_url = server + "/postgres"
            self.database_url = server + "/" + self.name
        else:
            self.admin_url = ""
            self.database_url = f"sqlite:///{self.tmp / 'db.sqlite3'}"
        self.redis_url = redis_url
        self.customers = customers
        self.no_schedules = no_schedules
        self.port = free_port()
        self.api_key = ""
        self.children: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    # --- environment -------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRA_", "Q_", "EMAIL_"))}
        env.pop("REDIS_URL", None)
        env.update(
            DATABASE_URL=self.database_url,
            SECRET_KEY=os.environ.get("SECRET_KEY", "test-only-secret-key"),
            DEBUG="false",
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(self.sink.port),
            PYTHONUNBUFFERED="1",
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def manage(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    # --- life cycle ----------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self._create_database()
            self.manage("migrate", "--no-input", "-v", "0")
            self.manage("shell", "-c", SETUP.format(count=self.customers, no_schedules=self.no_schedules))
            for flow in FLOWS:
                self.manage("import_flow", "-", "--launch", stdin=json.dumps(flow))
            self.api_key = self.manage("create_api_key", "realtime").strip().splitlines()[-1]
            self._start("runserver", "--noreload", f"127.0.0.1:{self.port}")
            self._wait_for_server()
            self._start("qcluster")
            # Events come once the cluster runs: what they prove is the
            # wake-ups of a running cluster, not the catch-up at its start.
            self._wait_for_log("qcluster.log", "running.")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for child in self.children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in self.children:
            with suppress(subprocess.TimeoutExpired):
                child.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(child, signal.SIGKILL)
            child.wait()
        self.children = []
        self._drop_database()

    def _start(self, *args: str) -> None:
        log = self.tmp / f"{args[0]}.log"
        self.logs.append(log)
        child = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            # A group of its own: stopping it stops qcluster's workers too.
            start_new_session=True,
        )
        self.children.append(child)

    def _wait_for_server(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/admin/login/", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("runserver did not answer:\n" + self.log_text())

    def _wait_for_log(self, name: str, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (self.tmp / name).read_text():
                time.sleep(1)  # the workers' first wake-ups
                return
            if any(child.poll() is not None for child in self.children):
                break
            time.sleep(0.2)
        raise RuntimeError(f"{name} never said {text!r}:\n" + self.log_text())

    def log_text(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for log in self.logs if log.exists())

    def _create_database(self) -> None:
        if self.admin_url:
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')

    def _drop_database(self) -> None:
        if self.admin_url:
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    # --- the API -------------------------------------------------------------
    def post_event(self, customer: str, event_id: str, *, order: int = 1) -> float:
        """POST one order_created event; the monotonic time of the answer."""
        event = {
            "id": event_id,
            "customer": customer,
            "type": EVENT_TYPE,
            "occurred_at": datetime.now(UTC).isoformat(),
            "payload": {"order": order},
        }
        return self._call("POST", "/api/v1/events", {"events": [event]}, 202)

    def subscribe(self, customer: str, email: str) -> float:
        """PUT /customers/{customer}, subscribed to email (its system event
        subscription_changed starts the second flow); the time of the answer."""
        body = {"email": email, "subscriptions": {"email": "subscribed"}}
        return self._call("PUT", f"/api/v1/customers/{customer}", body, 201)

    def _call(self, method: str, path: str, body: dict, status: int) -> float:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Api-Key {self.api_key}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answered = time.monotonic()
            if response.status != status:
                raise RuntimeError(f"{method} {path} answered {response.status}")
        return answered


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)
