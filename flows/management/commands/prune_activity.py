"""Delete old activity detail (node passes of ended runs, message contents),
keeping statistics. See flows/retention.py.

manage.py prune_activity --older-than P30D
"""

from django.core.management.base import BaseCommand, CommandError

from flows.retention import prune_activity


class Command(BaseCommand):
    help = "Delete node passes of runs ended before now - DURATION and empty old message contents."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="DURATION",
            help="ISO 8601 duration, at least P30D (e.g. P30D, P3M)",
        )

    def handle(self, *args, **options):
        try:
            counts = prune_activity(older_than=options["older_than"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Deleted {counts['node_passes']} node passes; emptied {counts['messages']} message contents"
        )
