from django.apps import AppConfig

from customers.audit import CUSTOMER_ACTIONS
from maestra.audit.actions import register_actions


class CustomersConfig(AppConfig):
    name = "customers"

    def ready(self):
        register_actions(*CUSTOMER_ACTIONS)
