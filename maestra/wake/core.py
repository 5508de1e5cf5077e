"""Wake-ups: background work starts the moment there is something to do,
not at the next periodic sweep.

`wake(target)` says "there is new work for `target`" (the engine: an event
was stored, a launch finished; delivery: a message was queued). After the
caller's transaction commits — once per target per transaction, never when it
rolls back — it upserts the target's flag and, unless a run is already
pending, queues the django-q2 task `maestra.wake.core.run(target)` and, on
PostgreSQL, sends a NOTIFY that the listener (listener.py) answers at once.

The flag coalesces: a thousand requests in a second queue one run, not a
thousand. A run claims the flag before it works, so a wake that lands while
the work goes on queues the next run (nothing is left behind), and of a
queued task and a NOTIFY for the same wake only the first to claim works.
A run that was queued but never claimed (a broker that lost it) stops the
coalescing after MAESTRA_WAKE_COALESCE_SECONDS. The periodic sweep stays the
safety net for anything a wake misses.

The kernel knows no app: targets are names an app registers at ready() with
the dotted path of its function (flows: "engine", channels: "delivery").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

ENGINE = "engine"
DELIVERY = "delivery"
CHANNEL = "maestra_wake"
TASK = "maestra.wake.core.run"
TABLE = "maestra_wake_flag"

# target -> dotted path of a function taking no argument (imported when run,
# so a target can be registered before its module may be imported).
_targets: dict[str, str] = {}


def register(target: str, func: str) -> None:
    """Make `target` wakeable; `func` (a dotted path) does its work."""
    if not target or len(target) > 50:
        raise ValueError(f"wake target {target!r} must be 1 to 50 characters")
    _targets[target] = func


def targets() -> dict[str, str]:
    return dict(_targets)


def wake(target: str) -> None:
    """New work for `target`: a run starts as soon as the caller's
    transaction commits. Never raises for the broker's sake: the work is
    committed, and the periodic sweep finds it if no run can be queued."""
    if target not in _targets:
        raise ValueError(f"unknown wake target {target!r} (registered: {', '.join(sorted(_targets))})")
    if not settings.MAESTRA_WAKE:
        return
    if connection.in_atomic_block:
        # Once per target per transaction. Callbacks of a rolled-back
        # savepoint leave run_on_commit, so a later wake registers again.
        for _sids, func, _robust in connection.run_on_commit:
            if isinstance(func, _OnCommit) and func.target == target:
                return
    transaction.on_commit(_OnCommit(target), robust=True)


class _OnCommit:
    """The commit callback of a wake; a class so a pending one can be found."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self) -> None:
        try:
            signal(self.target)
        except Exception:
            log.warning("wake of %r failed; the periodic sweep will do its work", self.target, exc_info=True)


def signal(target: str) -> bool:
    """Set the flag; when no run is pending, queue one (and NOTIFY on
    PostgreSQL). True when a run was queued. Outside any transaction."""
    if not _raise_flag(target):
        return False
    _queue(target)
    return True


def _raise_flag(target: str) -> bool:
    """One statement: upsert the flag; True when this wake must queue a run
    (none pending, or the pending one is older than the coalescing window).
    On PostgreSQL the same statement sends the NOTIFY in that case."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.MAESTRA_WAKE_COALESCE_SECONDS)
    # A row comes back only when the flag was inserted or taken over (the
    # WHERE of DO UPDATE failing returns none): that wake queues the run.
    upsert = f"""
        INSERT INTO {TABLE} (target, requested_at, queued_at) VALUES (%s, %s, %s)
        ON CONFLICT (target) DO UPDATE SET requested_at = excluded.requested_at, queued_at = excluded.queued_at
        WHERE {TABLE}.queued_at IS NULL OR {TABLE}.queued_at < %s
        RETURNING target"""
    params = [target, _db(now), _db(now), _db(stale)]
    if connection.vendor == "postgresql" and settings.MAESTRA_WAKE_LISTENER:
        statement = f"WITH flag AS ({upsert}) SELECT pg_notify(%s, flag.target)::text FROM flag"
        params.append(CHANNEL)
    else:
        statement = upsert
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return bool(cursor.fetchall())


def _queue(target: str) -> None:
    from django_q.tasks import async_task  # its module imports models

    async_task(TASK, target)


def _db(moment):
    return connection.ops.adapt_datetimefield_value(moment)


def claim(target: str) -> bool:
    """Clear the flag if a run is pending; True when this call cleared it
    (the caller does the work), False when another run already did."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET queued_at = NULL WHERE target = %s AND queued_at IS NOT NULL", [target]
        )
        return cursor.rowcount == 1


def run(target: str, *, force: bool = False) -> dict:
    """The django-q2 task (and the listener's work): claim the flag, then do
    the target's work. Without a pending flag it returns at once, unless
    `force` (a cluster's first wake-up, `wake_listener --once`)."""
    func = _targets.get(target)
    if func is None:
        log.warning("wake run for unknown target %r ignored", target)
        return {"unknown": 1}
    if not claim(target) and not force:
        return {"skipped": 1}
    work: Callable[[], dict] = import_string(func)
    return work() or {}


def wake_all() -> int:
    """Wake every target now (outside any transaction); how many runs were
    queued. A cluster that starts does this, so work that came while no
    cluster ran starts at once, not at the first schedule check."""
    if not settings.MAESTRA_WAKE:
        return 0
    queued = 0
    for target in sorted(_targets):
        try:
            queued += signal(target)
        except Exception:
            log.warning("could not wake %r at start", target, exc_info=True)
    return queued
