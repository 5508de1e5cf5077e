"""A/B test: a sticky variant per customer; the control variant gets no interactions."""

from __future__ import annotations

from flows.nodes.base import NodeKind, Problem, ValidationContext, register
from flows.nodes.splitter import share_ports, share_problems

MAX_VARIANTS = 5


@register
class ABTest(NodeKind):
    kind = "ab_test"
    label = "A/B test"

    def validate(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = [Problem(key, "unknown field") for key in config if key != "variants"]
        variants = config.get("variants")
        problems += share_problems(
            variants,
            field="variants",
            noun="variant",
            item_fields=("name", "percent", "control"),
            min_count=2,
            max_count=MAX_VARIANTS,
        )
        if isinstance(variants, list):
            controls = 0
            for index, variant in enumerate(variants):
                if not isinstance(variant, dict) or "control" not in variant:
                    continue
                if not isinstance(variant["control"], bool):
                    problems.append(Problem(f"variants.{index}.control", "must be true or false"))
                elif variant["control"]:
                    controls += 1
                    if controls > 1:
                        problems.append(
                            Problem(f"variants.{index}.control", "only one variant can be the control")
                        )
        return problems

    def ports(self, config: dict) -> list[str]:
        return share_ports(config.get("variants"))
