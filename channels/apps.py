from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from channels.audit import TEMPLATE_ACTIONS
from maestra.audit.actions import register_actions
from maestra.wake import DELIVERY, register


class ChannelsConfig(AppConfig):
    # Not Django Channels: the delivery channels (email, SMS, push, webhook).
    name = "channels"

    def ready(self) -> None:
        # Imported here: apps.py is imported before the model registry is
        # ready, and the policy code imports models.
        from channels.checks import check_policy

        register_actions(*TEMPLATE_ACTIONS)
        # A wake-up of delivery (maestra/wake/, after a message is queued) drains the outbox.
        register(DELIVERY, "channels.tasks.deliver_task")
        checks.register(check_policy)
        # gunicorn and qcluster never run system checks: a bad policy setting
        # must still stop the process at start, not the first delivery.
        if errors := check_policy():
            raise ImproperlyConfigured(errors[0].msg)
