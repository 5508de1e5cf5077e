"""One module per node kind; importing this package registers them all."""

from flows.nodes import (  # noqa: F401
    ab_test,
    condition,
    event,
    limitation,
    schedule,
    splitter,
    steps,
    wait,
)
from flows.nodes.base import REGISTRY, NodeKind, Problem, ValidationContext, get_kind, register

__all__ = ["REGISTRY", "NodeKind", "Problem", "ValidationContext", "get_kind", "register"]
