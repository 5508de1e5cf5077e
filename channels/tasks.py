"""The django-q2 task entry points of channels: deliver_task, the one task
that delivers the outbox (the periodic `maestra-deliver`, or a schedule of an
operator's own, runs it under this path)."""

from __future__ import annotations

from channels.delivery import drain


def deliver_task() -> dict[str, int]:
    """Deliver what is due in the outbox (channels.delivery.drain)."""
    return drain()
