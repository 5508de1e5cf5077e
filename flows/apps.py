from django.apps import AppConfig
from django.db.models.signals import post_migrate

from flows.audit import FLOW_ACTIONS
from maestra.audit.actions import register_actions
from maestra.wake import ENGINE, register


class FlowsConfig(AppConfig):
    name = "flows"

    def ready(self):
        register_actions(*FLOW_ACTIONS)
        # A wake-up of the engine (maestra/wake/) runs one sweep of due work.
        register(ENGINE, "flows.tasks.sweep_task")
        # Registering the periodic tasks on migrate keeps them in step with the
        # code on every deploy, without a separate set-up command.
        post_migrate.connect(register_schedules, sender=self)


def register_schedules(**kwargs):
    # Imported when the signal fires: this module loads before the models do.
    from flows.periodic_tasks import ensure_periodic_tasks

    ensure_periodic_tasks(using=kwargs.get("using", "default"))
