"""Print everything stored about a customer as JSON, see flows/privacy.py.

manage.py export_customer EXTERNAL_ID > customer.json
"""

import json

from customers.models import Customer
from flows.management.customer_command import CustomerCommand
from flows.privacy import export_customer


class Command(CustomerCommand):
    help = "Print a customer's data (profile, subscriptions, events, messages, runs) as JSON."

    def handle_customer(self, customer: Customer) -> None:
        self.stdout.write(json.dumps(export_customer(customer=customer), ensure_ascii=False, indent=2))
