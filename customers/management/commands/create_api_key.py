"""create_api_key NAME [--scopes a,b]: a new key for the REST API, with
every scope unless --scopes says which (docs/api.md lists them). The key is
shown once, alone on the last line (scripts take `| tail -n 1`); only its
hash is stored. Change its scopes or revoke it in the admin (API keys)."""

from django.core.management.base import BaseCommand, CommandError

from maestra.api.keys import create_key
from maestra.api.models import ApiKey, Scope, parse_scopes

MAX_NAME = ApiKey._meta.get_field("name").max_length


class Command(BaseCommand):
    help = "Create an API key for the REST API and print it (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("name", help=f"who or what uses the key (at most {MAX_NAME} characters)")
        parser.add_argument(
            "--scopes",
            help=f"comma-separated, of: {', '.join(Scope.values)} (default: all of them)",
        )

    def handle(self, *args, name: str, scopes: str | None, **options):
        name = name.strip()
        if not name:
            raise CommandError("the key needs a name")
        if len(name) > MAX_NAME:
            raise CommandError(f"the name is longer than {MAX_NAME} characters")
        try:
            chosen = parse_scopes(Scope.values if scopes is None else scopes.split(","))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        api_key = ApiKey(name=name, scopes=chosen)
        key = create_key(api_key=api_key, actor="command")
        self.stderr.write(
            f"Created API key {name!r} (prefix {api_key.prefix}) with the scopes {', '.join(chosen)}. "
            "Store it now: it is not shown again. Send it as 'Authorization: Api-Key <key>'."
        )
        self.stdout.write(key)
