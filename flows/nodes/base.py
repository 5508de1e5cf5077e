"""The one interface every node kind implements.

A node module (flows/nodes/<kind>.py) defines a subclass of NodeKind and
registers it with @register. The engine (flows/engine/move.py) only moves batches
of runs between nodes; what a node *does* lives in its module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from channels.models import Template
from customers.models import PromoPool, Segment
from flows.engine.batch import Batch


@dataclass(frozen=True)
class Problem:
    """One validation error inside a node's config; `field` is a dotted path
    into the config ("steps.0.template", "branches", "window.from")."""

    field: str
    message: str


def unknown_fields(value: dict, allowed, prefix: str = "") -> list[Problem]:
    """A problem for each key of `value` (a config, or an object inside one at
    `prefix`) that is not in `allowed`."""
    return [
        Problem(f"{prefix}.{key}" if prefix else key, "unknown field") for key in value if key not in allowed
    ]


@dataclass
class ValidationContext:
    """What config validation may look up, loaded once per document.
    `templates` maps slug -> channel."""

    templates: dict[str, str] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)  # slug -> kind
    pools: set[str] = field(default_factory=set)
    # Set by load(): the steps node may read the templates a flow sends, to
    # render each for a sample customer; a context built by hand skips that.
    reads_templates: bool = False
    # slug -> the problem of its sample render (None: it renders), so a
    # template is read and rendered once per validation.
    sample_renders: dict[str, tuple[str, str] | None] = field(default_factory=dict)

    @classmethod
    def load(cls) -> ValidationContext:
        return cls(
            templates=dict(Template.objects.values_list("slug", "channel")),
            segments=dict(Segment.objects.values_list("slug", "kind")),
            pools=set(PromoPool.objects.values_list("slug", flat=True)),
            reads_templates=True,
        )

    def template_row(self, slug: str) -> Any:
        """The Template `slug`, or None (missing, or a context built by hand).
        Read when asked: only the templates a flow sends, not every one."""
        if not self.reads_templates:
            return None

        return Template.objects.filter(slug=slug).first()


class NodeKind:
    kind: ClassVar[str]
    label: ClassVar[str]
    is_start: ClassVar[bool] = False
    # Wait nodes break cycles: a cycle without one is a validation error.
    breaks_cycles: ClassVar[bool] = False

    # The keys a config of this kind may have: validate() reports any other
    # key first, so no kind can forget the check.
    fields: ClassVar[tuple[str, ...]]

    def validate(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        """Every problem of a config: its unknown keys, then the kind's own
        (config_problems). A kind whose allowed keys depend on the config
        (wait's mode, condition's two forms) overrides this instead."""
        return unknown_fields(config, self.fields) + self.config_problems(config, ctx)

    def config_problems(self, config: dict, ctx: ValidationContext) -> list[Problem]:
        """The kind's own checks of a config (its known keys' values)."""
        raise NotImplementedError

    def ports(self, config: dict) -> list[str]:
        """The exits of a node with this config, in display order."""
        raise NotImplementedError

    def process(self, batch: Batch) -> None:
        """Handle every run of the batch that stands at a node of this kind."""
        raise NotImplementedError


class StartKind(NodeKind):
    """A start node (event, schedule): the run was checked when it entered
    (type, filter, age, schedule, launch limit), so it simply leaves by "next"."""

    is_start = True

    def ports(self, config: dict) -> list[str]:
        return ["next"]

    def process(self, batch: Batch) -> None:
        for run in batch.runs:
            batch.exit(run, "next")


REGISTRY: dict[str, NodeKind] = {}


def register(cls: type[NodeKind]) -> type[NodeKind]:
    if cls.validate is NodeKind.validate and not hasattr(cls, "fields"):
        raise TypeError(f"{cls.__name__} needs `fields` (the keys its config may have)")
    REGISTRY[cls.kind] = cls()
    return cls
