"""The two periodic django-q2 tasks: one sweep of due engine work and one of
the outbox. One Schedule row each (never one per customer: django-q2 polls
schedules with a Python loop, fine for two rows, not for millions)."""

from django.conf import settings

PERIODIC_TASKS = {
    "maestra-sweep": "flows.tick.sweep_task",
    "maestra-deliver": "flows.tick.deliver_task",
}


def ensure_periodic_tasks(*, using: str = "default") -> None:
    from django_q.models import Schedule

    minutes = max(1, settings.MAESTRA_SWEEP_SECONDS // 60)
    for name, func in PERIODIC_TASKS.items():
        Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
