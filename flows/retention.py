"""Retention: prune old activity detail, keep the statistics.

SPEC §10: customer activity (node passes, message contents) is kept 30 days at
least; older detail may go. `prune_activity` deletes the NodePass rows of runs
that ended before the cutoff and empties the rendered contents, context and
provider answers of finished messages created before it. Run rows, message
rows (status, reason), launch records and NodeStat hourly counters stay, so
statistics and launch limits are unchanged.

Run daily by the django-q2 task `flows.retention.prune_task` (registered on
migrate, flows/schedules_q.py) with settings MAESTRA_ACTIVITY_RETENTION, or by
`manage.py prune_activity --older-than P30D`.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels.models import Message
from flows.models import NodePass, Run
from maestra.durations import Duration, parse_duration

MINIMUM = parse_duration("P30D")
DEFAULT_RETENTION = "P90D"
CHUNK = 5000
FINISHED = (Message.Status.SENT, Message.Status.FAILED, Message.Status.NOT_SENT)


def retention_cutoff(*, older_than: str, now: datetime) -> datetime:
    """now minus the duration; ValueError for a bad or too short one."""
    duration: Duration = parse_duration(older_than)
    if duration.negative:
        raise ValueError(f"{older_than!r}: the duration must be positive")
    if duration.approximate() < MINIMUM.approximate():
        raise ValueError(f"{older_than!r}: activity is kept at least {MINIMUM} (SPEC §10)")
    # Calendar parts in UTC: an hour either way around a DST change does not matter here.
    return now - duration.calendar_part - duration.exact_part


def prune_activity(*, older_than: str, now: datetime | None = None, chunk: int = CHUNK) -> dict[str, int]:
    """Delete old activity detail in chunks (short transactions, so the engine
    is never blocked for long). Returns {"node_passes": n, "messages": m}."""
    now = now or timezone.now()
    cutoff = retention_cutoff(older_than=older_than, now=now)
    counts = {"node_passes": 0, "messages": 0}
    ended_runs = Run.objects.filter(ended_at__lt=cutoff).values("id")
    while True:
        ids = list(NodePass.objects.filter(run_id__in=ended_runs).values_list("id", flat=True)[:chunk])
        if not ids:
            break
        with transaction.atomic():
            counts["node_passes"] += NodePass.objects.filter(id__in=ids).delete()[0]
    last_id = 0
    while True:
        ids = list(
            Message.objects.filter(id__gt=last_id, created_at__lt=cutoff, status__in=FINISHED)
            .order_by("id")
            .values_list("id", flat=True)[:chunk]
        )
        if not ids:
            break
        last_id = ids[-1]
        counts["messages"] += (
            Message.objects.filter(id__in=ids)
            .exclude(rendered={}, context={}, response_body="")
            .update(rendered={}, context={}, response_body="")
        )
    return counts


def prune_task() -> dict[str, int]:
    """The daily django-q2 task."""
    return prune_activity(older_than=getattr(settings, "MAESTRA_ACTIVITY_RETENTION", DEFAULT_RETENTION))
