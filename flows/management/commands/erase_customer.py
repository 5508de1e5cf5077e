"""Erase a customer's personal data (right to be forgotten), see flows/privacy.py.

manage.py erase_customer EXTERNAL_ID
"""

from customers.models import Customer
from flows.management.customer_command import CustomerCommand
from flows.privacy import erase_customers, erased_external_id


class Command(CustomerCommand):
    help = "Erase a customer's personal data, events, message contents and activity detail."

    def handle_customer(self, customer: Customer) -> None:
        erase_customers(customer_ids=[customer.pk])
        self.stdout.write(f"Erased customer {customer.pk} (now {erased_external_id(customer.pk)})")
