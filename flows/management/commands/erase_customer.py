"""Erase a customer's personal data (right to be forgotten), see flows/privacy.py.

manage.py erase_customer EXTERNAL_ID
"""

from django.core.management.base import BaseCommand, CommandError

from customers.models import Customer
from flows.privacy import erase_customers, erased_external_id


class Command(BaseCommand):
    help = "Erase a customer's personal data, events, message contents and activity detail."

    def add_arguments(self, parser):
        parser.add_argument("external_id", metavar="EXTERNAL_ID")

    def handle(self, *args, **options):
        customer = Customer.objects.filter(external_id=options["external_id"]).first()
        if customer is None:
            raise CommandError(f"No customer with external id {options['external_id']!r}")
        erase_customers(customer_ids=[customer.pk])
        self.stdout.write(f"Erased customer {customer.pk} (now {erased_external_id(customer.pk)})")
