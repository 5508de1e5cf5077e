"""A/B test: a sticky variant per customer; the control variant gets no interactions.

With a `winner` setting (SPEC §13, flows/nodes/ab_winner_config.py) the engine
picks a winner by significance (flows/engine/ab_winner.py); with `auto`, a
customer without a stored assignment then goes to the winner, unless the draw
puts them in the control (the control keeps its share)."""

from __future__ import annotations

from flows.engine.batch import Batch
from flows.models import ABAssignment, ABWinner
from flows.nodes.ab_winner_config import winner_problems, winner_setting
from flows.nodes.base import NodeKind, Problem, ValidationContext, register
from flows.nodes.splitter import draw, pick_share, share_ports, share_problems

MAX_VARIANTS = 5


@register
class ABTest(NodeKind):
    kind = "ab_test"
    label = "A/B test"
    fields = ("variants", "winner")

    def config_problems(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        problems = winner_problems(config.get("winner"))
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

    def process(self, batch: Batch) -> None:
        variants = batch.config["variants"]
        names = {variant["name"] for variant in variants}
        control = {variant["name"] for variant in variants if variant.get("control")}
        key = batch.node.key
        live_runs = [run for run in batch.runs if not run.is_test]
        for run in batch.runs:
            if run.is_test:
                # Test mode: a plain splitter, nothing remembered.
                run_variant = pick_share(variants, draw(run.id, key, run.seq))
                _leave(batch, run, run_variant, control)
        if not live_runs:
            return
        flow_id = batch.graph.flow_id
        customer_ids = sorted({run.customer_id for run in live_runs})
        stored = dict(
            ABAssignment.objects.filter(
                flow_id=flow_id, node_key=key, customer_id__in=customer_ids
            ).values_list("customer_id", "variant")
        )
        # First pass (or the stored variant was removed in a later version): a
        # deterministic draw from (flow, node key, customer), then stored.
        fresh = {
            customer_id: pick_share(variants, draw(flow_id, key, customer_id))
            for customer_id in customer_ids
            if stored.get(customer_id) not in names
        }
        winner = _auto_winner(batch, names - control) if fresh else None
        if winner is not None:
            # Auto winner: the draw still decides the control's share; every
            # other fresh customer goes to the winner.
            fresh = {
                customer_id: variant if variant in control else winner
                for customer_id, variant in fresh.items()
            }
        if fresh:
            gone = [customer_id for customer_id in fresh if customer_id in stored]
            if gone:
                ABAssignment.objects.filter(flow_id=flow_id, node_key=key, customer_id__in=gone).delete()
            ABAssignment.objects.bulk_create(
                [
                    ABAssignment(
                        flow_id=flow_id,
                        node_key=key,
                        customer_id=customer_id,
                        variant=variant,
                        assigned_at=batch.now,
                    )
                    for customer_id, variant in fresh.items()
                ],
                ignore_conflicts=True,
            )
            stored.update(fresh)
        for run in live_runs:
            _leave(batch, run, stored[run.customer_id], control)


def _auto_winner(batch: Batch, candidates: set[str]) -> str | None:
    """The recorded winner of this node when its setting says `auto` and the
    winner is still one of its (non-control) variants; one query per batch."""
    setting = winner_setting(batch.config)
    if setting is None or not setting.auto:
        return None
    variant = (
        ABWinner.objects.filter(flow_id=batch.graph.flow_id, node_key=batch.node.key)
        .values_list("variant", flat=True)
        .first()
    )
    return variant if variant in candidates else None


def _leave(batch: Batch, run, variant: str, control: set[str]) -> None:
    if variant in control:
        # The control group gets no interactions: its runs end here.
        batch.complete(run, variant)
    else:
        batch.exit(run, variant)
