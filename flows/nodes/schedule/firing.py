"""Firing schedule starts (SPEC §8): arm a freshly launched version, fire every
due one, merge fires missed while nothing ran, skip a fire that raises.

The recurrence is judged and walked by recurrence.py (the node's validator
calls the same function); the audience enters through the one rule of
audience entry (flows.engine.entry.enter_audience) or, when larger than one
batch, in parts that every worker shares (parts.py). Not to be confused with
the django-q2 Schedule rows of the periodic tasks (flows/periodic_tasks.py)
nor with a flow's start/end dates (the document's "schedule")."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q

from customers.models import Segment
from customers.rules import RuleError, segment_q, to_q
from flows.engine.batch import EngineContext
from flows.engine.entry import (
    ENTERING_STATUSES,
    analyse_after_entry,
    enter_audience,
    entering_customers,
    start_node,
    within_schedule,
)
from flows.models import FirePart, Flow, FlowVersion
from flows.nodes.schedule.recurrence import last_fire_at_or_before, next_fire
from maestra.audit import log as audit
from maestra.faults import error_text, is_system_error
from maestra.wake import ENGINE, wake

log = logging.getLogger(__name__)

# A test version fires once, for at most this many customers.
TEST_AUDIENCE_LIMIT = 10_000


def audience_q(config: dict) -> Q:
    """The customers a schedule start's audience takes (segment and/or rule)."""
    audience = config.get("audience") or {}
    q = Q()
    if audience.get("segment"):
        q &= segment_q(Segment.objects.get(slug=audience["segment"]))
    if audience.get("rule"):
        q &= to_q(audience["rule"])
    return q


def fire_audience(version: FlowVersion, start) -> Q | None:
    """The audience of one fire, or None when it cannot be selected any more:
    a segment deleted after the launch (or a rule segment made circular) must
    not stop every tick; that fire takes nobody and the schedule moves on."""
    try:
        return audience_q(start.config)
    except (Segment.DoesNotExist, RuleError) as exc:
        log.warning(
            "flow %s v%s: schedule audience unavailable, fire skipped: %s",
            version.flow_id,
            version.number,
            exc,
        )
        return None


def schedule_tz(config: dict, version: FlowVersion) -> ZoneInfo:
    name = config.get("timezone") or "flow"
    return ZoneInfo(version.timezone if name == "flow" else name)


def arm_schedule(*, version: FlowVersion, now: datetime) -> None:
    """A freshly launched version with a schedule start fires strictly after now.
    Raises ValueError only for a recurrence validation would refuse (the
    launch then fails, see flows.lifecycle.finish_pending_launches)."""
    start = start_node(version)
    if start is None or start.kind != "schedule":
        return
    fire = next_fire(start.config["recurrence"], tz=schedule_tz(start.config, version), after=now, anchor=now)
    FlowVersion.objects.filter(pk=version.pk).update(next_fire_at=fire)


def fire_schedules(*, ctx: EngineContext | None = None) -> dict[str, int]:
    """Fire every due schedule start once; fires missed while nothing ran are
    merged into one, with the run clock at the latest scheduled time.

    Each version fires in its own transaction. A fire that raises (an
    audience rule or recurrence no validator caught) is skipped alone: the
    version moves on to its next fire (or is disarmed when it has none), the
    error goes to the flow's audit log, and every other schedule fires."""
    ctx = ctx or EngineContext()
    now = ctx.now
    counts: Counter = Counter()
    due_ids = list(
        FlowVersion.objects.filter(
            next_fire_at__lte=now,
            flow__live_version_id=F("id"),
            # Paused ones too: their fires are skipped, not kept for later.
            flow__status__in=(*ENTERING_STATUSES, Flow.Status.PAUSED),
        ).values_list("id", flat=True)
    )
    for version_id in due_ids:
        try:
            fired = _fire(version_id, now=now)
        except Exception as exc:
            if is_system_error(exc):
                raise
            counts["errors"] += 1
            _skip_failed_fire(version_id, now=now, error=exc)
            continue
        counts.update(fired)
        # Committed: the claims that follow plan with the new runs counted.
        analyse_after_entry(fired["runs_started"])
    return dict(counts)


def _fire(version_id: int, *, now: datetime) -> Counter:
    counts: Counter = Counter()
    with transaction.atomic():
        version = (
            FlowVersion.objects.select_for_update(skip_locked=True)
            .filter(pk=version_id, next_fire_at__lte=now)
            .select_related("flow")
            .first()
        )
        if version is None:
            return counts  # another worker fires it
        start = start_node(version)
        tz = schedule_tz(start.config, version)
        recurrence = start.config["recurrence"]
        anchor = version.launched_at or version.created_at
        fire_at = (
            last_fire_at_or_before(
                recurrence,
                tz=tz,
                after=version.next_fire_at - timedelta(seconds=1),
                until=now,
                anchor=anchor,
            )
            or version.next_fire_at
        )
        audience = None
        if version.flow.status != Flow.Status.PAUSED and within_schedule(version, now, trigger_at=fire_at):
            audience = fire_audience(version, start)
            counts["audience_missing" if audience is None else "fired"] += 1
        else:
            counts["skipped"] += 1
        if audience is not None:
            parts = 0 if version.is_test else _write_parts(version, audience=audience, clock=fire_at, now=now)
            if parts:
                counts["parts"] += parts
                # Every worker may share the parts: wake one now (after the
                # commit) rather than at its next periodic sweep.
                wake(ENGINE)
            else:
                counts["runs_started"] += enter_audience(
                    version=version,
                    audience=audience,
                    clock=fire_at,
                    now=now,
                    limit=TEST_AUDIENCE_LIMIT if version.is_test else None,
                )
        # A test fires once; a live version goes on to the next occurrence.
        following = None if version.is_test else next_fire(recurrence, tz=tz, after=now, anchor=anchor)
        FlowVersion.objects.filter(pk=version.pk).update(next_fire_at=following)
    return counts


def _write_parts(version: FlowVersion, *, audience: Q, clock: datetime, now: datetime) -> int:
    """An audience larger than one batch enters in parts (parts.py): write
    the fire's FirePart rows, each about MAESTRA_BATCH_SIZE entering
    customers by id, and return how many. The bounds come from one
    statement (every Nth customer id of the audience, and the last); a
    smaller audience writes nothing (0) and enters in the fire's own
    transaction, as does an empty one."""
    size = settings.MAESTRA_BATCH_SIZE
    ids = entering_customers(version=version, audience=audience, now=now).order_by().values("id")
    inner_sql, inner_params = ids.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, total FROM (SELECT audience.id AS id, "
            "row_number() OVER (ORDER BY audience.id) AS n, count(*) OVER () AS total "
            f"FROM ({inner_sql}) audience) numbered WHERE n %% %s = 0 OR n = total ORDER BY id",
            [*inner_params, size],
        )
        bounds = cursor.fetchall()
    if len(bounds) < 2:
        return 0
    total = bounds[0][1]
    after = [0] + [upto for upto, _ in bounds[:-1]]  # customer ids start at 1
    FirePart.objects.bulk_create(
        [
            FirePart(
                version=version, clock=clock, after_id=low, upto_id=upto, fire_size=total, created_at=now
            )
            for low, (upto, _) in zip(after, bounds, strict=True)
        ]
    )
    return len(bounds)


def _skip_failed_fire(version_id: int, *, now: datetime, error: Exception) -> None:
    """A fire that raised: nobody entered (its transaction rolled back); the
    version moves on to its next fire, or is disarmed when even that cannot be
    computed, and the flow's audit log says why."""
    text = error_text(error)
    log.error("schedule of flow version %s failed, fire skipped: %s", version_id, text, exc_info=error)
    with transaction.atomic():
        version = FlowVersion.objects.select_for_update().filter(pk=version_id).select_related("flow").first()
        if version is None:
            return
        following = None
        if not version.is_test:
            try:
                start = start_node(version)
                following = next_fire(
                    start.config["recurrence"],
                    tz=schedule_tz(start.config, version),
                    after=now,
                    anchor=version.launched_at or version.created_at,
                )
            except Exception as exc:
                if is_system_error(exc):
                    raise
        FlowVersion.objects.filter(pk=version.pk).update(next_fire_at=following)
        audit.log(
            "flow.schedule_failed",
            subject=version.flow,
            data={
                "version": version.number,
                "error": text,
                "next_fire_at": following.isoformat() if following else None,
            },
        )
