# TRANSITIONAL: the old task paths; remove after the next release.
"""django-q2 stores task functions by dotted path: Schedule rows written before
this release and tasks already queued name `flows.tick.sweep_task` and
`flows.tick.deliver_task`. The periodic rows are rewritten on every migrate
(flows/periodic_tasks.py resets their func), but a queued task or a row read
between the deploy and the migrate still needs these names to import. The
tasks are flows.tasks.sweep_task and channels.tasks.deliver_task."""

from channels.tasks import deliver_task
from flows.tasks import sweep_task

__all__ = ["deliver_task", "sweep_task"]
