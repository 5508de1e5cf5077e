"""Alerts: a limitation node running out of places and a promo pool running low
or empty notify the owners of the flows concerned by email (Django's
send_mail) and show on the monitoring page — once per crossing.

`check_alerts` runs with every sweep task (flows/schedules_q.py ALERT_TASKS)
and from `flows_tick`-like callers; it costs a few grouped queries whatever
the number of customers:

- promo pools with `alert_below`: free codes counted in one GROUP BY; a pool
  whose free codes drop below `alert_below` (or to zero) and has not alerted
  yet alerts, sets `PromoPool.alerted`; once codes are back above it, the flag
  is cleared (re-armed).
- limitation counters: the engine sets `LimitationCounter.alerted` when the
  places left drop below the node's `alert_below` and clears it when places
  come back; an alert goes out for each counter that is `alerted` and has no
  notification yet (an audit entry `alert.limitation_low` naming the counter).
  A counter re-armed and crossing again between two checks alerts once.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Q

from customers.models import PromoPool
from flows.models import Flow, LimitationCounter, Node
from maestra.audit import log as audit
from maestra.audit.models import AuditEntry

log = logging.getLogger(__name__)

LIMITATION_ACTION = "alert.limitation_low"
POOL_ACTION = "alert.promo_pool_low"


def recipients(flows: list[Flow]) -> list[str]:
    """The owners' addresses, else settings.MAESTRA_ALERT_EMAILS."""
    owners = sorted({f.owner.email for f in flows if f.owner_id and f.owner and f.owner.email})
    return owners or list(getattr(settings, "MAESTRA_ALERT_EMAILS", []))


def _send(*, to: list[str], subject: str, body: str) -> bool:
    if not to:
        log.warning("alert with nobody to tell: %s", subject)
        return False
    try:
        send_mail(subject, body, settings.MAESTRA_EMAIL_FROM, to, fail_silently=False)
    except Exception:  # an alert must never break the sweep; it stays visible on the monitoring page
        log.exception("could not send the alert %r", subject)
        return False
    return True


def low_pools() -> list[dict]:
    """Pools below their alert_below now: {pool, free, alert_below}."""
    rows = (
        PromoPool.objects.filter(alert_below__isnull=False)
        .annotate(free=Count("codes", filter=Q(codes__issued_at__isnull=True)))
        .order_by("slug")
    )
    return [{"pool": p, "free": p.free, "alert_below": p.alert_below} for p in rows if p.free < p.alert_below]


def flows_using_pool(slug: str) -> list[Flow]:
    """Live flows whose live version issues codes from this pool."""
    nodes = Node.objects.filter(kind="steps", version__flow__live_version_id__isnull=False).select_related(
        "version__flow__owner"
    )
    found = {}
    for node in nodes:
        if node.version_id != node.version.flow.live_version_id:
            continue
        for step in (node.config or {}).get("steps") or []:
            if (
                isinstance(step, dict)
                and step.get("action") == "issue_promo_code"
                and step.get("pool") == slug
            ):
                found[node.version.flow_id] = node.version.flow
    return list(found.values())


def check_promo_pools() -> int:
    """Alert for pools that crossed below alert_below; re-arm recovered ones."""
    sent = 0
    low = low_pools()
    low_ids = {row["pool"].pk for row in low}
    # Re-arm pools that are back above their threshold.
    PromoPool.objects.filter(alerted=True).exclude(pk__in=low_ids).update(alerted=False)
    for row in low:
        pool = row["pool"]
        with transaction.atomic():
            # Claim the crossing first: two sweeps never alert twice.
            if not PromoPool.objects.filter(pk=pool.pk, alerted=False).update(alerted=True):
                continue
            flows = flows_using_pool(pool.slug)
            state = "is empty" if row["free"] == 0 else f"has {row['free']} free code(s) left"
            subject = f"[Maestra] Promo pool {pool.slug} {state}"
            body = (
                f"The promo pool {pool.name!r} ({pool.slug}) {state}; the alert threshold is "
                f"{row['alert_below']}.\nFlows issuing from it: "
                + (", ".join(f.name for f in flows) or "none live")
                + "\nUpload more codes in the admin or with POST /api/v1/promo-pools/"
                + f"{pool.slug}/codes."
            )
            audit.log(
                POOL_ACTION,
                # The flow when exactly one issues from the pool, else the pool.
                subject=flows[0] if len(flows) == 1 else pool,
                data={"pool": pool.slug, "free": row["free"], "alert_below": row["alert_below"]},
            )
        sent += _send(to=recipients(flows), subject=subject, body=body)
    return sent


def low_limitations() -> list[LimitationCounter]:
    """Alerted counters of live flows, the newest window per node only (an
    old window's flag is history, not an alert)."""
    newest: dict[tuple[int, str], LimitationCounter] = {}
    for counter in (
        LimitationCounter.objects.filter(
            alerted=True, flow__status__in=[Flow.Status.ACTIVE, Flow.Status.PAUSED]
        )
        .select_related("flow__owner")
        .order_by("window_start", "id")
    ):
        newest[(counter.flow_id, counter.node_key)] = counter
    return sorted(newest.values(), key=lambda c: c.pk)


def check_limitations() -> int:
    sent = 0
    counters = low_limitations()
    if not counters:
        return 0
    notified = set(
        AuditEntry.objects.filter(
            action=LIMITATION_ACTION, data__counter_id__in=[c.pk for c in counters]
        ).values_list("data__counter_id", flat=True)
    )
    for counter in counters:
        if counter.pk in notified:
            continue
        flow = counter.flow
        subject = f"[Maestra] Limitation {counter.node_key} of {flow.name} is running out"
        body = (
            f"The limitation node {counter.node_key!r} of the flow {flow.name!r} has used {counter.used} "
            f"place(s) in the window starting {counter.window_start:%Y-%m-%d %H:%M} UTC and is below its "
            "alert threshold. Raise its max or wait for the next window."
        )
        audit.log(
            LIMITATION_ACTION,
            subject=flow,
            data={"counter_id": counter.pk, "node": counter.node_key, "used": counter.used},
        )
        sent += _send(to=recipients([flow]), subject=subject, body=body)
    return sent


def check_alerts() -> dict[str, int]:
    """The periodic task: both checks. Returns how many emails went out."""
    return {"promo_pools": check_promo_pools(), "limitations": check_limitations()}


def current_alerts() -> list[dict]:
    """What the monitoring page shows: pools and limitations low right now."""
    alerts = []
    for row in low_pools():
        state = "empty" if row["free"] == 0 else f"{row['free']} free code(s) left"
        alerts.append(
            {
                "kind": "promo pool",
                "name": row["pool"].slug,
                "detail": f"{state} (alert below {row['alert_below']})",
            }
        )
    for counter in low_limitations():
        alerts.append(
            {
                "kind": "limitation",
                "name": f"{counter.flow.name} / {counter.node_key}",
                "detail": f"{counter.used} place(s) used since {counter.window_start:%Y-%m-%d %H:%M} UTC",
            }
        )
    return alerts
