"""The LISTEN side of wake-ups (PostgreSQL only): a thread that answers the
NOTIFY of maestra.wake.core at once, without the broker's round trip.

Every django-q2 worker starts one (on_worker_spawn); `manage.py
wake_listener` runs one in the foreground. Only one of them, across every
cluster and machine on the database, listens at a time: the holder of a
session-level advisory lock. The others retry every few seconds, so when the
holder dies (its connection closes and the lock with it) another takes over.

A notified target runs in a thread of its own (engine and delivery never
wait for each other); a NOTIFY for a target already running makes it run
once more when it ends. Each run first claims the flag (core.run), so a
queued task that arrives later for the same wake returns at once.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connection, connections

from maestra.wake import core

log = logging.getLogger(__name__)

# pg_try_advisory_lock key: "maestra wake" in ASCII, 8 bytes.
LOCK_KEY = 0x6D61657374726177
RETRY_SECONDS = 2.0
# How often the listening loop looks at its stop event.
POLL_SECONDS = 1.0

_started = threading.Lock()
_thread: threading.Thread | None = None


def on_worker_spawn(sender=None, proc_name: str = "", **kwargs) -> None:
    """django-q2's post_spawn (in each new worker process): wake every
    target once, and start this process's listener thread. Not in
    django-q2's sync mode (Q_SYNC: every async_task runs a "worker" inline,
    inside the caller; there is no cluster to wake)."""
    from django_q.conf import Conf

    if Conf.SYNC:
        return
    try:
        core.wake_all()
    except Exception:
        log.warning("wake-up at worker start failed", exc_info=True)
    finally:
        # The worker's main thread must not keep a connection it opened here.
        connection.close()
    start_thread()


def listener_enabled() -> bool:
    return (
        settings.MAESTRA_WAKE
        and settings.MAESTRA_WAKE_LISTENER
        and connections["default"].vendor == "postgresql"
    )


def start_thread() -> threading.Thread | None:
    """Start this process's listener thread (once); None when disabled."""
    global _thread
    if not listener_enabled():
        return None
    with _started:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=Listener().serve, name="maestra-wake-listener", daemon=True)
            _thread.start()
        return _thread


class Dispatcher:
    """Runs notified targets, one thread per target at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._threads: list[threading.Thread] = []

    def submit(self, target: str, *, force: bool = False) -> None:
        with self._lock:
            if target in self._running:
                self._again.add(target)
                return
            self._running.add(target)
            thread = threading.Thread(
                target=self._loop, args=(target, force), name=f"maestra-wake-{target}", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _loop(self, target: str, force: bool) -> None:
        try:
            while True:
                try:
                    core.run(target, force=force)
                except Exception:
                    log.exception("wake run of %r failed; the periodic sweep will retry its work", target)
                force = False
                with self._lock:
                    if target not in self._again:
                        self._running.discard(target)
                        return
                    self._again.discard(target)
        finally:
            connection.close()

    def join(self, timeout: float | None = None) -> None:
        for thread in list(self._threads):
            thread.join(timeout)


class Listener:
    def __init__(self, *, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self.dispatcher = Dispatcher()
        self.holding = threading.Event()

    def serve(self) -> None:
        """Until `stop` is set: take the lock (or wait for it), LISTEN, and
        hand each NOTIFY to the dispatcher. Reconnects after any error."""
        import psycopg

        while not self.stop.is_set():
            try:
                # Django's connection settings, without its cursor class and adapters.
                params = {
                    key: value
                    for key, value in connections["default"].get_connection_params().items()
                    if key not in ("cursor_factory", "context")
                }
                with psycopg.connect(**params, autocommit=True) as conn:
                    held = conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]
                    if not held:
                        self.stop.wait(RETRY_SECONDS)
                        continue
                    conn.execute(f"LISTEN {core.CHANNEL}")
                    self.holding.set()
                    log.info("wake listener: listening on %s", core.CHANNEL)
                    # NOTIFYs sent while nobody listened are gone: whatever
                    # is flagged is run now (a run without a flag returns at once).
                    for target in core.targets():
                        self.dispatcher.submit(target)
                    while not self.stop.is_set():
                        for notify in conn.notifies(timeout=POLL_SECONDS):
                            if notify.payload in core.targets():
                                self.dispatcher.submit(notify.payload)
            except Exception:
                log.warning("wake listener: connection lost; retrying", exc_info=True)
                self.stop.wait(RETRY_SECONDS)
            finally:
                self.holding.clear()
        self.dispatcher.join(timeout=30)
