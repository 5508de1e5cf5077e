"""django-q2 task functions. They take primary keys (a task may run long after
it was enqueued, in another process) and call the services. The periodic
Schedule rows that name them are kept by flows/periodic_tasks.py."""

from __future__ import annotations

from flows.engine.tick import tick
from flows.lifecycle.launch import finish_launch
from flows.models import Flow


def finish_launch_task(flow_id: int, user_id: int | None = None) -> str:
    """Freeze the draft of a flow in `launching` and make it live. Returns the
    flow's status afterwards (kept as the task's result)."""
    if not Flow.objects.filter(pk=flow_id).exists():
        # Deleted between the request and this task: nothing left to launch.
        return "missing"
    return finish_launch(flow_id=flow_id, user_id=user_id).status


def sweep_task() -> dict[str, int]:
    """The periodic sweep (registered on migrate), also enqueued after events
    are ingested: engine work only; delivery runs as its own task
    (channels.tasks.deliver_task) so a slow provider never delays timers."""
    return tick(deliver=False)
