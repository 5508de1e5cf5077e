"""The base of the commands about one customer named by external id
(erase_customer, export_customer)."""

from django.core.management.base import BaseCommand, CommandError

from customers.models import Customer


class CustomerCommand(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("external_id", metavar="EXTERNAL_ID")

    def handle(self, *args, external_id: str, **options):
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            raise CommandError(f"No customer with external id {external_id!r}")
        self.handle_customer(customer)

    def handle_customer(self, customer: Customer) -> None:
        raise NotImplementedError
