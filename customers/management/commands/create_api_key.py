"""create_api_key NAME: a new key for the REST API. The key is shown once,
alone on the last line (scripts take `| tail -n 1`); only its hash is stored.
Revoke it in the admin (API keys)."""

from django.core.management.base import BaseCommand, CommandError
from rest_framework_api_key.models import APIKey

MAX_NAME = APIKey._meta.get_field("name").max_length


class Command(BaseCommand):
    help = "Create an API key for the REST API and print it (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("name", help=f"who or what uses the key (at most {MAX_NAME} characters)")

    def handle(self, *args, name: str, **options):
        name = name.strip()
        if not name:
            raise CommandError("the key needs a name")
        if len(name) > MAX_NAME:
            raise CommandError(f"the name is longer than {MAX_NAME} characters")
        api_key, key = APIKey.objects.create_key(name=name)
        self.stderr.write(
            f"Created API key {name!r} (prefix {api_key.prefix}). Store it now: it is not shown again. "
            "Send it as 'Authorization: Api-Key <key>'."
        )
        self.stdout.write(key)
