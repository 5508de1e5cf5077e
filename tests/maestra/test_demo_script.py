"""scripts/demo.sh, the README's first command: it runs on SQLite whatever the
shell exports, and stopping it stops everything it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_using(marker: str) -> list[int]:
    """Processes whose environment holds `marker` (the demo's database path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for_admin(port: int, demo: subprocess.Popen, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise AssertionError(f"demo.sh exited early with {demo.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the admin did not answer")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_the_demo_runs_on_sqlite_and_stops_its_children(tmp_path, stop_signal):
    database = tmp_path / "demo.sqlite3"
    port = free_port()
    env = dict(
        os.environ,
        # What a shell set up for production or CI exports; the demo ignores it.
        DATABASE_URL="postgres://nobody@127.0.0.1:1/nowhere",
        REDIS_URL="redis://127.0.0.1:1/0",
        MAESTRA_DEMO_DB=str(database),
        PORT=str(port),
    )
    env.pop("SECRET_KEY", None)
    # Output to a file: a pipe nobody reads would block the servers' logging.
    log = (tmp_path / "demo.log").open("w")
    demo = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert wait_for_admin(port, demo) == 200, (tmp_path / "demo.log").read_text()
        assert database.exists()
        children = processes_using(str(database))
        # The script, qcluster (with its own worker processes) and runserver.
        assert len(children) >= 3, children

        demo.send_signal(stop_signal)
        demo.wait(timeout=60)
        deadline = time.monotonic() + 30
        while processes_using(str(database)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_using(str(database)) == []
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        for pid in processes_using(str(database)):
            os.kill(pid, signal.SIGKILL)
