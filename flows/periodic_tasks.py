"""The django-q2 Schedule rows of the periodic tasks (not to be confused with
a schedule start node, flows/nodes/schedule/, nor with a flow's start/end
dates): one sweep of due engine work and one of the outbox. One Schedule
row each (never one per customer: django-q2 polls schedules with a Python
loop, fine for two rows, not for millions).

Registered on every migrate (flows/apps.py), so a deploy keeps them in step
with the code: the function path and the interval are reset to what the code
says; an operator's duplicate of a row (the admin allows it, schedule names
are not unique) is removed, so a task never runs twice per interval."""

from django.conf import settings
from django.db import transaction
from django_q.models import Schedule

PERIODIC_TASKS = {
    "maestra-sweep": "flows.tasks.sweep_task",
    "maestra-deliver": "channels.tasks.deliver_task",
}
# Tasks that run with the sweep, apart so PERIODIC_TASKS stays the engine's two.
ALERT_TASKS = {
    # Limitation and promo pool alerts to the flows' owners (flows/alerts.py).
    "maestra-alerts": "flows.alerts.check_alerts",
}
# Tasks that run once a day (registered the same way).
DAILY_TASKS = {
    # Activity detail past settings.MAESTRA_ACTIVITY_RETENTION (flows/retention.py).
    "maestra-prune-activity": "flows.retention.prune_task",
}


def ensure_periodic_tasks(*, using: str = "default") -> None:
    minutes = max(1, settings.MAESTRA_SWEEP_SECONDS // 60)
    with transaction.atomic(using=using):
        every = {name: minutes for name in PERIODIC_TASKS | ALERT_TASKS} | {
            name: 24 * 60 for name in DAILY_TASKS
        }
        for name, func in (PERIODIC_TASKS | ALERT_TASKS | DAILY_TASKS).items():
            rows = list(Schedule.objects.using(using).select_for_update().filter(name=name).order_by("pk"))
            schedule = rows[0] if rows else Schedule(name=name)
            for duplicate in rows[1:]:
                duplicate.delete(using=using)
            wanted = {"func": func, "schedule_type": Schedule.MINUTES, "minutes": every[name], "repeats": -1}
            if schedule.pk is None or any(getattr(schedule, key) != value for key, value in wanted.items()):
                for key, value in wanted.items():
                    setattr(schedule, key, value)
                schedule.save(using=using)
