"""The `winner` setting of an A/B node (SPEC §13):

    "winner": {"metric": "goal"|"click", "min_per_variant": 100,
               "confidence": 0.95, "auto": true} | null

Judged here for the save and run-time validator (flows/nodes/ab_test.py)
and read, with its defaults, by the engine that picks the winner
(flows/engine/ab_winner.py). `metric` is required; the other fields may be
left out and then take the defaults below (export keeps what was saved).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.document.fields import is_int
from flows.nodes.base import Problem, unknown_fields

METRICS = ("goal", "click")
FIELDS = ("metric", "min_per_variant", "confidence", "auto")
DEFAULT_MIN_PER_VARIANT = 100
DEFAULT_CONFIDENCE = 0.95
# A winner needs evidence: a handful of customers per variant cannot carry a
# significance test (the normal approximation needs tens at the least), and
# a cap keeps a typo (1e9) from silently meaning "never".
MIN_SAMPLE = 10
MAX_SAMPLE = 10_000_000
# Below 0.5 "confidence" would pick noise; 0.9999 is already far beyond need.
MIN_CONFIDENCE = 0.5
MAX_CONFIDENCE = 0.9999


@dataclass(frozen=True)
class WinnerSetting:
    metric: str
    min_per_variant: int
    confidence: float
    auto: bool


def winner_problems(value: Any) -> list[Problem]:
    """Problems of the `winner` field (dotted paths under "winner")."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [Problem("winner", "must be an object {metric, min_per_variant, confidence, auto} or null")]
    problems = unknown_fields(value, FIELDS, "winner")
    if "metric" not in value:
        problems.append(Problem("winner.metric", "is required: goal or click"))
    elif value["metric"] not in METRICS:
        problems.append(Problem("winner.metric", "must be goal or click"))
    if "min_per_variant" in value:
        minimum = value["min_per_variant"]
        if not is_int(minimum) or not MIN_SAMPLE <= minimum <= MAX_SAMPLE:
            problems.append(
                Problem("winner.min_per_variant", f"must be an integer from {MIN_SAMPLE} to {MAX_SAMPLE:,}")
            )
    if "confidence" in value:
        confidence = value["confidence"]
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not MIN_CONFIDENCE <= confidence <= MAX_CONFIDENCE
        ):
            problems.append(
                Problem("winner.confidence", f"must be a number from {MIN_CONFIDENCE} to {MAX_CONFIDENCE}")
            )
    if "auto" in value and not isinstance(value["auto"], bool):
        problems.append(Problem("winner.auto", "must be true or false"))
    return problems


def winner_setting(config: dict | None) -> WinnerSetting | None:
    """The node's valid `winner` setting with its defaults, or None (no
    winner wanted, or a config the validator refuses)."""
    value = (config or {}).get("winner")
    if value is None or winner_problems(value):
        return None
    return WinnerSetting(
        metric=value["metric"],
        min_per_variant=value.get("min_per_variant", DEFAULT_MIN_PER_VARIANT),
        confidence=float(value.get("confidence", DEFAULT_CONFIDENCE)),
        auto=value.get("auto", False),
    )
