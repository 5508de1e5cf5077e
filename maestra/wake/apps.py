from django.apps import AppConfig


class WakeConfig(AppConfig):
    # Wake-ups of background work (core.py, listener.py). Part of the kernel:
    # it knows its targets only by name; the apps register them at ready().
    name = "maestra.wake"
    label = "wake"
    verbose_name = "Wake-ups"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from maestra.wake.listener import on_worker_spawn

        # Every django-q2 worker that starts wakes every target once (a fresh
        # cluster works from its first second, not from its first schedule
        # check 30 s later) and, on PostgreSQL, runs a LISTEN thread.
        post_spawn.connect(on_worker_spawn, dispatch_uid="maestra.wake.on_worker_spawn")
