"""Print everything stored about a customer as JSON, see flows/privacy.py.

manage.py export_customer EXTERNAL_ID > customer.json
"""

import json

from django.core.management.base import BaseCommand, CommandError

from customers.models import Customer
from flows.privacy import export_customer


class Command(BaseCommand):
    help = "Print a customer's data (profile, subscriptions, events, messages, runs) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("external_id", metavar="EXTERNAL_ID")

    def handle(self, *args, **options):
        customer = Customer.objects.filter(external_id=options["external_id"]).first()
        if customer is None:
            raise CommandError(f"No customer with external id {options['external_id']!r}")
        self.stdout.write(json.dumps(export_customer(customer=customer), ensure_ascii=False, indent=2))
