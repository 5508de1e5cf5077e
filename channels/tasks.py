"""The django-q2 task entry points of channels: deliver_task, the one task
that delivers the outbox (the periodic `maestra-deliver`, a wake after a
message is queued, or a schedule of an operator's own, runs it under this
path), and deliver_helper_task, the extra drains it asks for when the backlog
is big (MAESTRA_DELIVERY_WORKERS)."""

from __future__ import annotations

import contextlib
import logging
import threading

from django.conf import settings
from django.core.cache import cache
from django_q.tasks import async_task

from channels.delivery import LANES, drain, due_backlog

logger = logging.getLogger(__name__)

# While set (in Django's cache: Redis when REDIS_URL is set, so shared by
# every cluster), helpers were asked for recently and are not asked again.
HELPERS_KEY = "maestra:delivery-helpers"
HELPERS_TTL = 30  # seconds
# How many times a helper that lands beside a drain passes itself on.
HELPER_HOPS = 3

# Drains running in this process (its worker loop's task, and the wake
# listener's thread, which runs deliver_task beside it: maestra/wake/listener.py).
_running = 0
_running_lock = threading.Lock()


@contextlib.contextmanager
def _draining():
    global _running
    with _running_lock:
        _running += 1
    try:
        yield
    finally:
        with _running_lock:
            _running -= 1


def deliver_task(lanes: list[str] | tuple[str, ...] | None = None) -> dict[str, int]:
    """Deliver what is due in the outbox (channels.delivery.drain); `lanes`
    ["service"] drains the service lane only (a wake for a service message
    never waits for a marketing backlog). With a backlog of at least two
    chunks, first asks MAESTRA_DELIVERY_WORKERS - 1 more cluster workers to
    drain alongside."""
    chosen = tuple(lane for lane in (lanes or LANES) if lane in LANES) or LANES
    with _draining():
        ask_helpers()
        return drain(lanes=chosen)


def deliver_helper_task(hops: int = 0) -> dict[str, int]:
    """One more drain, alongside deliver_task's (it asks for no helpers
    itself). A helper the cluster hands to a process where a drain already
    runs passes itself on (queued again, at most HELPER_HOPS times): the
    wake listener runs deliver_task in a thread of a worker process whose
    own loop stays free to take the helper, and two drains in one process
    share its interpreter lock, so one core, while another worker idles."""
    if _running and hops < HELPER_HOPS:
        async_task("channels.tasks.deliver_helper_task", hops + 1, task_name="maestra-deliver-helper")
        return {"passed_on": 1}
    with _draining():
        return drain()


def ask_helpers() -> int:
    """Queue the helper drains when they are worth it; how many were queued."""
    wanted = settings.MAESTRA_DELIVERY_WORKERS - 1
    if wanted < 1 or settings.Q_CLUSTER.get("sync"):
        return 0  # in sync mode a helper would run first, alone: no use
    threshold = 2 * settings.MAESTRA_DELIVERY_CHUNK
    if due_backlog(cap=threshold) < threshold:
        return 0
    if not cache.add(HELPERS_KEY, 1, timeout=HELPERS_TTL):
        return 0
    for _ in range(wanted):
        async_task("channels.tasks.deliver_helper_task", task_name="maestra-deliver-helper")
    logger.info("delivery backlog: asked %s more worker(s) to drain", wanted)
    return wanted
