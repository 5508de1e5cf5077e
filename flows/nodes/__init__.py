"""The node kinds: one module (or package) per kind, each owning everything of
its kind — its config validator (the one the engine trusts), entry or firing
for the start kinds (event.py matches events, schedule/ fires audiences), and
its processing of a batch of runs. flows/nodes/base.py is the interface they
implement; the engine (flows/engine/move.py) hands each kind its batch.

Adding a kind = adding its module here and to KINDS."""

from types import ModuleType

from flows.nodes import (
    ab_test,
    condition,
    event,
    limitation,
    schedule,
    splitter,
    steps,
    wait,
    wait_event,
)
from flows.nodes.base import REGISTRY, NodeKind, Problem, ValidationContext, register

# kind -> the module that owns it (importing it registered the kind's NodeKind).
KINDS: dict[str, ModuleType] = {
    "event": event,
    "schedule": schedule,
    "condition": condition,
    "splitter": splitter,
    "ab_test": ab_test,
    "wait": wait,
    "wait_event": wait_event,
    "steps": steps,
    "limitation": limitation,
}
if set(KINDS) != set(REGISTRY):  # a kind module added without its KINDS line, or the reverse
    raise RuntimeError(f"KINDS {sorted(KINDS)} and the registered kinds {sorted(REGISTRY)} differ")


def get_kind(kind: str) -> NodeKind | None:
    return REGISTRY.get(kind)


__all__ = ["KINDS", "REGISTRY", "NodeKind", "Problem", "ValidationContext", "get_kind", "register"]
