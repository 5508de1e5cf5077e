"""Splitter: each pass draws a branch at random, by percentage."""

from __future__ import annotations

import hashlib
from typing import Any

from flows.document.fields import is_int, port_name_problem
from flows.engine.batch import Batch
from flows.nodes.base import NodeKind, Problem, ValidationContext, register, unknown_fields


def share_problems(
    items: Any, *, field: str, noun: str, item_fields: tuple[str, ...], min_count: int, max_count: int | None
) -> list[Problem]:
    """Named shares [{name, percent, ...}]: unique port names, integer
    percentages 0..100 summing to exactly 100 (splitter branches, A/B variants)."""
    if not isinstance(items, list):
        return [Problem(field, f"must be a list of {noun}s {{name, percent}}")]
    if len(items) < min_count:
        return [Problem(field, f"needs at least {min_count} {noun}s")]
    problems = []
    if max_count is not None and len(items) > max_count:
        problems.append(Problem(field, f"at most {max_count} {noun}s"))
    names: set[str] = set()
    total, percents_ok = 0, True
    for index, item in enumerate(items):
        prefix = f"{field}.{index}"
        if not isinstance(item, dict):
            problems.append(Problem(prefix, f"a {noun} must be an object {{name, percent}}"))
            percents_ok = False
            continue
        problems += unknown_fields(item, item_fields, prefix)
        name = item.get("name")
        if message := port_name_problem(name):
            problems.append(Problem(f"{prefix}.name", message))
        elif name in names:
            problems.append(Problem(f"{prefix}.name", f"another {noun} is already named {name!r}"))
        else:
            names.add(name)
        percent = item.get("percent")
        if not is_int(percent) or not 0 <= percent <= 100:
            problems.append(Problem(f"{prefix}.percent", "must be an integer from 0 to 100"))
            percents_ok = False
        else:
            total += percent
    if percents_ok and total != 100:
        problems.append(Problem(field, f"percentages must add up to 100, not {total}"))
    return problems


def share_ports(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [item["name"] for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)]


@register
class Splitter(NodeKind):
    kind = "splitter"
    label = "Splitter"
    fields = ("branches",)

    def config_problems(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        return share_problems(
            config.get("branches"),
            field="branches",
            noun="branch",
            item_fields=("name", "percent"),
            min_count=2,
            max_count=None,
        )

    def ports(self, config: dict) -> list[str]:
        return share_ports(config.get("branches"))

    def process(self, batch: Batch) -> None:
        branches = batch.config["branches"]
        for run in batch.runs:
            # Seeded by (run, node, pass): re-processing after a crash draws the same branch.
            batch.exit(run, pick_share(branches, draw(run.id, batch.node.key, run.seq)))


def draw(*parts: object) -> int:
    """A deterministic number in 0..9999 from the parts (uniform enough for shares)."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def pick_share(items: list[dict], number: int) -> str:
    """The item whose cumulative percentage band holds `number` (0..9999)."""
    upper = 0
    for item in items:
        upper += item["percent"] * 100
        if number < upper:
            return item["name"]
    return items[-1]["name"]
