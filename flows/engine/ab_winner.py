"""Picking the winner of A/B nodes (SPEC §13), on every engine tick.

For each A/B node of a live version whose config has a `winner` setting and
no recorded winner yet:
1. one query for all of them reads the hourly exit counters (NodeStat) and
   skips the nodes where a non-control variant has fewer than
   `min_per_variant` entered (the common case costs nothing more), and a
   node tested less than MAESTRA_AB_WINNER_CHECK_SECONDS ago is skipped too;
2. one aggregate query per remaining node counts, per variant, the passes
   (entered) and the passes followed by a conversion (converted), in SQL:
   no row per customer comes back to Python;
3. the best non-control variant must beat every other variant, the control
   included, in a two-sided two-proportion z-test at `confidence`;
4. the winner is recorded once (ABWinner, unique per flow and node key) with
   the time, the counts and the p-value, and written to the audit log in the
   same transaction.

Counting is the canvas statistics' (flows/admin_stats.ab_test_stats) over
all time, of live runs: a pass converts when the customer has a matching
event within the attribution window after it and no later pass at the node
came in between (an event counts for the customer's latest pass before it).
Metric `goal`: the site-wide conversion event types
(settings.MAESTRA_CONVERSION_EVENT_TYPES); metric `click`: an
`email_clicked` event of a message of this flow.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Sum,
    Value,
)
from django.utils import timezone

from customers.models import Event
from flows.models import ABWinner, Flow, Node, NodePass, NodeStat
from flows.nodes.ab_winner_config import WinnerSetting, winner_setting
from maestra.audit.log import log as audit_log
from maestra.durations import parse_duration

logger = logging.getLogger(__name__)

# The same settings and defaults as the canvas statistics (flows/admin_stats.py).
DEFAULT_CONVERSION_TYPES = ("order_created", "order")
DEFAULT_ATTRIBUTION_WINDOW = "P7D"
CLICK_EVENT = "email_clicked"
AUDIT_ACTION = "flow.ab_winner"
DEFAULT_CHECK_SECONDS = 300


# --- the test ------------------------------------------------------------------


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of x1/n1 against
    x2/n2. 1.0 when it cannot tell (an empty sample; both rates 0 % or 100 %)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Figures:
    variant: str
    control: bool
    entered: int
    converted: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.entered if self.entered else None


@dataclass(frozen=True)
class Verdict:
    variant: str
    p_value: float
    counts: list[dict]


def decide(figures: list[Figures], setting: WinnerSetting) -> Verdict | None:
    """The winner, if there is one: every non-control variant has at least
    `min_per_variant` entered, and the best non-control variant beats every
    other variant (control included) with p < 1 - confidence."""
    contenders = [row for row in figures if not row.control]
    if not contenders or any(row.entered < setting.min_per_variant for row in contenders):
        return None
    # Highest rate first; a tie on the rate cannot win (it would not be significant).
    best = max(contenders, key=lambda row: row.rate or 0.0)
    alpha = 1 - setting.confidence
    p_values: dict[str, float] = {}
    for other in figures:
        if other.variant == best.variant:
            continue
        if (other.rate or 0.0) >= (best.rate or 0.0) and other.entered:
            return None
        p_values[other.variant] = two_proportion_p_value(
            best.converted, best.entered, other.converted, other.entered
        )
        if not p_values[other.variant] < alpha:
            return None
    counts = [
        {
            "variant": row.variant,
            "control": row.control,
            "entered": row.entered,
            "converted": row.converted,
            "rate": row.rate,
            "p_value": p_values.get(row.variant),
        }
        for row in figures
    ]
    return Verdict(variant=best.variant, p_value=max(p_values.values(), default=1.0), counts=counts)


# --- the counts ----------------------------------------------------------------


def conversion_event_types() -> list[str]:
    return list(getattr(settings, "MAESTRA_CONVERSION_EVENT_TYPES", DEFAULT_CONVERSION_TYPES))


def attribution_window() -> timedelta:
    """The attribution window as a timedelta for SQL. Day and week windows
    are exact in UTC (as the statistics add them); months count as 30 days."""
    duration = parse_duration(getattr(settings, "MAESTRA_AB_ATTRIBUTION_WINDOW", DEFAULT_ATTRIBUTION_WINDOW))
    if duration.years or duration.months:
        return duration.approximate()
    return timedelta(days=duration.weeks * 7 + duration.days) + duration.exact_part


def _matching_events(flow_id: int, metric: str):
    if metric == "click":
        return Event.objects.filter(type=CLICK_EVENT, payload__flow=flow_id)
    return Event.objects.filter(type__in=conversion_event_types())


def variant_figures(*, flow_id: int, node_key: str, variants: list[dict], metric: str) -> list[Figures]:
    """Per variant of the node's config (then any variant of an earlier
    version that has passes): entered and converted, in one query."""
    passes = NodePass.objects.filter(
        run__flow_id=flow_id, run__is_test=False, node_key=node_key, exited_at__isnull=False
    ).exclude(port="")
    window_end = ExpressionWrapper(
        OuterRef("exited_at") + Value(attribution_window()), output_field=DateTimeField()
    )
    # A later pass of the same customer at this node, before the event: the
    # event then belongs to that pass.
    later = passes.filter(
        run__customer_id=OuterRef(OuterRef("run__customer_id")),
        exited_at__gt=OuterRef(OuterRef("exited_at")),
        exited_at__lte=OuterRef("occurred_at"),
    )
    converting = _matching_events(flow_id, metric).filter(
        customer_id=OuterRef("run__customer_id"),
        occurred_at__gte=OuterRef("exited_at"),
        occurred_at__lte=window_end,
    )
    converting = converting.filter(~Exists(later))
    rows = (
        passes.values("port")
        .annotate(entered=Count("id"), converted=Count("id", filter=Q(Exists(converting))))
        .order_by()
    )
    counted = {row["port"]: (row["entered"], row["converted"]) for row in rows}
    figures = []
    for variant in variants:
        entered, converted = counted.pop(variant["name"], (0, 0))
        if variant.get("percent") == 0 and not entered:
            continue  # a 0 % variant gets no one by design: nothing to compare
        figures.append(Figures(variant["name"], bool(variant.get("control")), entered, converted))
    # Variants gone from the config (an earlier version) neither win nor block.
    return figures


# --- the tick step -------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    flow_id: int
    version_id: int
    node_key: str
    variants: list[dict]
    setting: WinnerSetting


def candidates() -> list[Candidate]:
    """A/B nodes of the live versions of active flows with a valid `winner`
    setting and no winner recorded yet (one query)."""
    decided = ABWinner.objects.filter(flow_id=OuterRef("version__flow_id"), node_key=OuterRef("key"))
    rows = (
        Node.objects.filter(
            kind="ab_test",
            version__flow__status=Flow.Status.ACTIVE,
            version_id=F("version__flow__live_version_id"),
        )
        .filter(~Exists(decided))
        .values_list("version__flow_id", "version_id", "key", "config")
        .order_by("version__flow_id", "key")
    )
    found = []
    for flow_id, version_id, key, config in rows:
        setting = winner_setting(config)
        if setting is not None:
            found.append(Candidate(flow_id, version_id, key, config["variants"], setting))
    return found


def _sample_reached(found: list[Candidate]) -> list[Candidate]:
    """The candidates whose every non-control variant has at least
    `min_per_variant` exits in the hourly counters (one query for all)."""
    if not found:
        return []
    exits = (
        NodeStat.objects.filter(
            is_test=False,
            flow_id__in={c.flow_id for c in found},
            node_key__in={c.node_key for c in found},
            metric__startswith="exit:",
        )
        .values("flow_id", "node_key", "metric")
        .annotate(total=Sum("count"))
        .order_by()
    )
    totals = {(row["flow_id"], row["node_key"], row["metric"]): row["total"] for row in exits}
    return [
        c
        for c in found
        if all(
            totals.get((c.flow_id, c.node_key, f"exit:{v['name']}"), 0) >= c.setting.min_per_variant
            for v in c.variants
            if not v.get("control")
        )
    ]


def _due(candidate: Candidate) -> bool:
    """Whether this worker should test the node now: at most once per
    MAESTRA_AB_WINNER_CHECK_SECONDS across the workers (cache.add is atomic
    in Redis), so frequent sweeps (one per ingested batch) do not repeat the
    aggregate query. The cache is only a throttle: losing it costs one more
    test, never a second winner (the unique constraint sees to that)."""
    seconds = getattr(settings, "MAESTRA_AB_WINNER_CHECK_SECONDS", DEFAULT_CHECK_SECONDS)
    if seconds <= 0:
        return True
    return cache.add(f"maestra:ab-winner-check:{candidate.flow_id}:{candidate.node_key}", 1, timeout=seconds)


def record(candidate: Candidate, verdict: Verdict) -> ABWinner | None:
    """Record the winner and its audit entry together; None when a winner
    was already recorded (by another worker, or before a crash)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            winner = ABWinner.objects.create(
                flow_id=candidate.flow_id,
                node_key=candidate.node_key,
                version_id=candidate.version_id,
                variant=verdict.variant,
                metric=candidate.setting.metric,
                confidence=candidate.setting.confidence,
                p_value=verdict.p_value,
                counts=verdict.counts,
                decided_at=now,
            )
            audit_log(
                AUDIT_ACTION,
                actor="engine",
                subject=Flow(pk=candidate.flow_id),
                subject_repr=f"flow #{candidate.flow_id}",
                data={
                    "node": candidate.node_key,
                    "variant": verdict.variant,
                    "metric": candidate.setting.metric,
                    "confidence": candidate.setting.confidence,
                    "p_value": verdict.p_value,
                    "auto": candidate.setting.auto,
                    "counts": verdict.counts,
                },
                at=now,
            )
    except IntegrityError:
        return None
    return winner


def decide_winners() -> dict[str, int]:
    """The tick step: {"checked": nodes tested, "decided": winners recorded}."""
    checked = decided = 0
    for candidate in _sample_reached(candidates()):
        if not _due(candidate):
            continue
        checked += 1
        figures = variant_figures(
            flow_id=candidate.flow_id,
            node_key=candidate.node_key,
            variants=candidate.variants,
            metric=candidate.setting.metric,
        )
        verdict = decide(figures, candidate.setting)
        if verdict is not None and record(candidate, verdict) is not None:
            decided += 1
            logger.info(
                "A/B winner of flow %s node %s: %s (p=%.3g)",
                candidate.flow_id,
                candidate.node_key,
                verdict.variant,
                verdict.p_value,
            )
    return {"checked": checked, "decided": decided}
